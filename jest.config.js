/** Unit, render and live tests. Type checking is `npm run build`'s job; ts-jest only transpiles. */
module.exports = {
  testEnvironment: "node",
  roots: ["<rootDir>/test"],
  testMatch: ["**/*.test.ts"],
  transform: {
    "^.+\\.ts$": [
      "ts-jest",
      {
        diagnostics: false,
        tsconfig: {
          isolatedModules: true,
          module: "commonjs",
          target: "ES2022",
          esModuleInterop: true,
          sourceMap: true,
        },
      },
    ],
  },
  testTimeout: 60000,
};
