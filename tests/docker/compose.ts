/**
 * One Compose project of the repository's compose.yaml, driven through the Compose CLI
 * (`docker compose` v2 when the plugin is there, else Debian's docker-compose 1.x), with the
 * test-only build override and the project's host-side settings in its environment.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../harness.ts";
import { DOCKER, exec, execOk, type Output } from "./engine.ts";

/** The test-only override: builds on the host network (engines without a default bridge). */
export const BUILD_OVERRIDE = join(ROOT, "tests/docker/compose.build-host-network.yaml");

const PROJECT_LABEL = "com.docker.compose.project";
const SERVICE_LABEL = "com.docker.compose.service";

/** The Compose command line: `docker compose` (v2 plugin) or `docker-compose` (1.x). */
export async function composeCommand(): Promise<string[]> {
  if ((await exec([DOCKER, "compose", "version"], { timeoutMs: 10_000 })).code === 0) {
    return [DOCKER, "compose"];
  }
  for (const bin of ["/usr/bin/docker-compose", "/usr/local/bin/docker-compose"]) {
    if (existsSync(bin)) return [bin];
  }
  throw new Error("neither `docker compose` nor docker-compose is installed (scripts/setup.sh)");
}

/** State of one container of the project. */
export interface ContainerState {
  id: string;
  name: string;
  service: string;
  /** running, exited, restarting, … */
  status: string;
  /** healthy, starting, unhealthy, or "none" without a healthcheck. */
  health: string;
  /** When the container's process last started (ISO time). */
  startedAt: string;
}

interface Inspected {
  Id: string;
  Name: string;
  Config: { Labels: Record<string, string> };
  State: { Status: string; StartedAt: string; Health?: { Status: string } };
}

/** A Compose project named `name`, run with `env` on top of this process's environment. */
export class ComposeProject {
  constructor(
    readonly name: string,
    private readonly cli: string[],
    readonly env: Record<string, string>,
  ) {}

  /** Runs `compose -p <name> -f compose.yaml -f <override> <args>` from the repository root. */
  run(args: readonly string[], timeoutMs = 120_000): Promise<Output> {
    const argv = [...this.cli, "-p", this.name, "-f", join(ROOT, "compose.yaml")];
    return exec([...argv, "-f", BUILD_OVERRIDE, ...args], { env: this.env, cwd: ROOT, timeoutMs });
  }

  /** Like {@link run}, throwing with Compose's output unless it succeeds. */
  async ok(args: readonly string[], timeoutMs = 120_000): Promise<string> {
    const r = await this.run(args, timeoutMs);
    if (r.code !== 0) {
      throw new Error(`compose ${args.join(" ")} exited with ${r.code}:\n${r.stderr}${r.stdout}`);
    }
    return r.stdout;
  }

  /** Every container labelled with this project, running or not. */
  async containers(): Promise<ContainerState[]> {
    const ids = (await this.ids("ps", "-aq")).filter(Boolean);
    if (ids.length === 0) return [];
    const all = JSON.parse(await execOk([DOCKER, "inspect", ...ids])) as Inspected[];
    return all.map((c) => ({
      id: c.Id,
      name: c.Name.replace(/^\//, ""),
      service: c.Config.Labels[SERVICE_LABEL] ?? "",
      status: c.State.Status,
      health: c.State.Health?.Status ?? "none",
      startedAt: c.State.StartedAt,
    }));
  }

  /** Containers, networks and volumes of this project that still exist, one line each. */
  async leftovers(): Promise<string[]> {
    const found: string[] = [];
    for (const [kind, args] of [
      ["container", ["ps", "-aq"]],
      ["network", ["network", "ls", "-q"]],
      ["volume", ["volume", "ls", "-q"]],
    ] as const) {
      for (const id of await this.ids(...args)) if (id) found.push(`${kind} ${id}`);
    }
    return found;
  }

  /** Removes whatever {@link leftovers} lists, without Compose (for runs that died midway). */
  async removeLeftovers(): Promise<void> {
    const ids = (...args: string[]) => this.ids(...args).then((l) => l.filter(Boolean));
    const containers = await ids("ps", "-aq");
    if (containers.length > 0) await exec([DOCKER, "rm", "-f", "-v", ...containers]);
    const networks = await ids("network", "ls", "-q");
    if (networks.length > 0) await exec([DOCKER, "network", "rm", ...networks]);
    const volumes = await ids("volume", "ls", "-q");
    if (volumes.length > 0) await exec([DOCKER, "volume", "rm", "-f", ...volumes]);
  }

  private async ids(...args: string[]): Promise<string[]> {
    const filter = `label=${PROJECT_LABEL}=${this.name}`;
    return (await execOk([DOCKER, ...args, "--filter", filter])).trim().split("\n");
  }
}

/** Names of Compose projects whose containers, networks or volumes start with `prefix`. */
export async function staleProjects(prefix: string): Promise<string[]> {
  const names = new Set<string>();
  const format = `{{index .Labels "${PROJECT_LABEL}"}}`;
  for (const args of [
    ["ps", "-a", "--format", `{{.Label "${PROJECT_LABEL}"}}`],
    ["network", "ls", "--format", `{{.Label "${PROJECT_LABEL}"}}`],
    ["volume", "ls", "--format", format],
  ]) {
    const out = await exec([DOCKER, ...args, "--filter", `label=${PROJECT_LABEL}`]);
    for (const n of out.stdout.split("\n")) if (n.startsWith(prefix)) names.add(n.trim());
  }
  return [...names];
}
