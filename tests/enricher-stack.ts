/**
 * What the enricher end-to-end suites (L7, DNS names, scale-out, Hubble metrics) put
 * beside the stack of {@link startStack}: a dnsmasq and a Bun HTTP server in a pod,
 * the wait for dnsmasq to answer, and every flow the observer holds.
 */
import type { PodProcess, Topology } from "@periscope/devstack";
import type { Flow } from "@periscope/proto";
import { waitFor } from "@periscope/testing";
import type { Stack } from "./harness.ts";

/**
 * Starts dnsmasq in `pod`, listening on the pod's IPv4 address only, answering for
 * `domain` from `records` (further dnsmasq flags, e.g. `--host-record=…`, `--cname=…`)
 * and never forwarding. The caller kills it.
 */
export function startDnsmasq(
  topology: Topology,
  pod: string,
  domain: string,
  records: readonly string[],
): PodProcess {
  return topology.spawn(pod, [
    "dnsmasq",
    "--no-daemon",
    "--conf-file=/dev/null",
    "--no-resolv",
    "--no-hosts",
    "--user=root",
    "--pid-file=",
    "--bind-interfaces",
    `--listen-address=${topology.pod(pod).ipv4}`,
    `--local=/${domain}/`,
    ...records,
  ]);
}

/**
 * Starts a Bun HTTP server in `pod` on 0.0.0.0:`port` whose handler is `fetchSource`
 * (source text of a `(req: Request) => Response | Promise<Response>`), and returns
 * once it listens. The caller kills it; on a failed start it is killed here.
 */
export async function startHttpServer(
  topology: Topology,
  pod: string,
  port: number,
  fetchSource = `() => new Response("ok")`,
): Promise<PodProcess> {
  const http = topology.spawn(pod, [
    "bun",
    "-e",
    `Bun.serve({ hostname: "0.0.0.0", port: ${port}, fetch: ${fetchSource} }); console.log("up");`,
  ]);
  const reader = http.stdout.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  if (!new TextDecoder().decode(value).includes("up")) {
    http.kill();
    throw new Error("http server did not start");
  }
  return http;
}

/** Waits until dig from `from` asking `server` for `name` gets `server` back (up to 15 s). */
export async function waitDnsAnswering(
  topology: Topology,
  from: string,
  server: string,
  name: string,
): Promise<void> {
  await waitFor(
    async () =>
      (
        await topology.exec(from, ["dig", "+short", "+time=1", "+tries=1", `@${server}`, name])
      ).stdout.trim() === server,
    { timeoutMs: 15_000, intervalMs: 200, what: "dnsmasq answering" },
  );
}

/** Every flow the stack's observer holds (up to 100,000), oldest first; no lost events. */
export async function allFlows(stack: Stack): Promise<Flow[]> {
  const out: Flow[] = [];
  for await (const r of stack.client.getFlows({ number: 100_000n })) {
    if (r.responseTypes.case === "flow") out.push(r.responseTypes.value);
  }
  return out;
}
