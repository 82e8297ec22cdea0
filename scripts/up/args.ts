/** Command-line options of the run command (scripts/up.ts). */
export interface UpOptions {
  /** Interfaces to watch instead of the demo topology. */
  readonly interfaces: string | undefined;
  /** An existing broker; absent → the run command starts and owns a local nats-server. */
  readonly natsUrl: string | undefined;
  /** Port of the local nats-server the run command starts (default 4222). */
  readonly natsPort: number;
  /** Observer gRPC address (default localhost:4245). */
  readonly observerAddr: string;
  /** Ops ports: collector at this port, enricher +1, observer +2, recorder +3 (default 9401). */
  readonly opsPortBase: number;
  /** Netns name prefix of the demo topology (default "psc-"). */
  readonly demoPrefix: string;
  /** Where logs and the local broker's JetStream store go (default <repo>/.periscope). */
  readonly stateDir: string;
  /** Flags for `periscope observe` (default -f). */
  readonly observeArgs: readonly string[];
}

const USAGE = `usage: scripts/up.sh [options] [-- observe flags…]
  --interfaces LIST       comma list of [<netns>/]<ifname> to watch instead of the demo topology
  --nats-url URL          use this NATS server instead of starting a local one
  --nats-port N           port of the local nats-server started here (default 4222)
  --listen-address ADDR   observer gRPC address (default localhost:4245)
  --ops-port-base N       ops ports: collector N, enricher N+1, observer N+2, recorder N+3 (default 9401)
  --demo-prefix P         netns name prefix of the demo topology (default psc-)
  --state-dir DIR         logs and the local broker's store (default .periscope)
  after --, flags for 'periscope observe' (default: -f)`;

/** A bad command line; the message says what was wrong, `usage` how to call. */
export class UsageError extends Error {
  override name = "UsageError";
  readonly usage = USAGE;
}

function port(flag: string, v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) {
    throw new UsageError(`${flag}: "${v}" is not a port (1-65535)`);
  }
  return n;
}

/**
 * Parses the run command's arguments; environment: PERISCOPE_INTERFACES and
 * PERISCOPE_NATS_URL as defaults for --interfaces and --nats-url. Throws {@link UsageError}.
 */
export function parseUpArgs(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  defaultStateDir: string,
): UpOptions {
  let interfaces = env.PERISCOPE_INTERFACES || undefined;
  let natsUrl = env.PERISCOPE_NATS_URL || undefined;
  let natsPort = 4222;
  let observerAddr = "localhost:4245";
  let opsPortBase = 9401;
  let demoPrefix = "psc-";
  let stateDir = defaultStateDir;
  let observeArgs: readonly string[] = ["-f"];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? "";
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${a} needs a value`);
      return v;
    };
    if (a === "--interfaces") interfaces = next();
    else if (a === "--nats-url") natsUrl = next();
    else if (a === "--nats-port") natsPort = port(a, next());
    else if (a === "--listen-address") observerAddr = next();
    else if (a === "--ops-port-base") opsPortBase = port(a, next());
    else if (a === "--demo-prefix") demoPrefix = next();
    else if (a === "--state-dir") stateDir = next();
    else if (a === "--") {
      observeArgs = argv.slice(i + 1);
      break;
    } else if (a === "-h" || a === "--help") throw new UsageError("");
    else throw new UsageError(`unknown argument "${a}"`);
  }
  if (!/^[a-z][a-z0-9-]{0,19}$/.test(demoPrefix)) {
    throw new UsageError(
      `--demo-prefix: "${demoPrefix}" must be 1-20 of [a-z0-9-], starting with a letter`,
    );
  }
  return {
    interfaces,
    natsUrl,
    natsPort,
    observerAddr,
    opsPortBase,
    demoPrefix,
    stateDir,
    observeArgs,
  };
}
