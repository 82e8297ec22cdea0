/**
 * A service for runService's signal tests: start prints "started", stop takes
 * SLOW_STOP_MS and prints "cleanup done" at its very end (where a collector
 * would have detached its programs).
 */
import { runService } from "../service.ts";

const stopMs = Number(process.env.SLOW_STOP_MS ?? "300");
const deadlineMs = Number(process.env.STOP_DEADLINE_MS ?? "30000");

await runService({
  name: "slow-stop",
  stopDeadlineMs: deadlineMs,
  loadConfig: () => ({ logLevel: "silent" as const }),
  start: async () => {
    process.stdout.write("started\n");
    return {
      async stop() {
        await Bun.sleep(stopMs);
        process.stdout.write("cleanup done\n");
      },
    };
  },
});
