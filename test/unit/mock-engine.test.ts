import * as pulumi from "@pulumi/pulumi";
import { redactSecrets, runProgramWithMocks, SECRET_MARKER } from "../../scripts/mock-engine";

describe("the mocked engine harness", () => {
  it("hides secret stack outputs, including ones derived from a secret", async () => {
    // A first version read the outputs runInPulumiStack resolved to, where secrets are plain:
    // every secret-output check passed without looking. This pins the fix.
    const run = await runProgramWithMocks({
      config: {},
      stack: "t",
      program: () => {
        const key = pulumi.secret("s3cret");
        return { key, url: pulumi.interpolate`mysql://u:${key}@h/db`, plain: pulumi.output("visible"), n: 3 };
      },
    });
    expect(run.outputs).toEqual({ key: SECRET_MARKER, url: SECRET_MARKER, plain: "visible", n: 3 });
  });

  it("redacts secret inputs leaf by leaf, keeping map keys", () => {
    const wrap = (value: unknown) => ({
      "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270",
      value,
    });
    expect(redactSecrets({ a: "x", b: wrap({ K: "v", L: ["w"] }), c: [wrap("z"), "y"] })).toEqual({
      a: "x",
      b: { K: SECRET_MARKER, L: [SECRET_MARKER] },
      c: [SECRET_MARKER, "y"],
    });
  });
});
