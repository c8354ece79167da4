import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { PATRONI_IMAGE, PATRONI_IMAGE_CONTEXT } from "../../components/database/postgres-cluster";

/**
 * The image PostgresCluster builds must run what the live tests prove: the same PostgreSQL
 * minor and the same Patroni build as this machine's Debian packages.
 */
const dockerfile = readFileSync(join(PATRONI_IMAGE_CONTEXT, "Dockerfile"), "utf8");
const installed = (pkg: string) =>
  spawnSync("dpkg-query", ["-W", "-f", "${Version}", pkg], { encoding: "utf8" }).stdout.trim();

describe("the Patroni image's Dockerfile", () => {
  it("starts from the official postgres image of the PostgreSQL the live tests run", () => {
    const from = /^FROM (\S+)$/m.exec(dockerfile)?.[1];
    // Debian's version reads like 15.18-0+deb12u1: the official image's tag is 15.18-bookworm.
    const local = installed("postgresql-15").split("-")[0];
    expect(local).toMatch(/^15\.\d+$/);
    expect(from).toBe(`postgres:${local}-bookworm`);
    expect(PATRONI_IMAGE).toContain(`:${local}-`);
  });

  it("pins Debian's Patroni build, the one the live tests run", () => {
    const pinned = /patroni=(\S+)/.exec(dockerfile)?.[1];
    expect(pinned).toBe(installed("patroni"));
    expect(PATRONI_IMAGE).toContain(`patroni${pinned!.split("-")[0]}`);
  });

  it("runs Patroni as the image's unprivileged postgres user", () => {
    expect(dockerfile).toMatch(/^USER 999$/m);
    expect(dockerfile).toMatch(/^ENTRYPOINT \["\/usr\/bin\/patroni"\]$/m);
  });
});
