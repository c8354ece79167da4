/** Unit, render and live tests. Type checking is `npm run build`'s job; ts-jest only transpiles. */
module.exports = {
  // Node's environment, recording each test's and hook's duration against its timeout when the
  // live repeat runner asks (HA_BACKEND_TEST_LOG).
  testEnvironment: "<rootDir>/test/support/timed-environment.ts",
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
