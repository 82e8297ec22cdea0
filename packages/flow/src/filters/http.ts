import type { FlowFilter } from "@periscope/proto";
import type { FilterBuilder } from "./builder.ts";
import type { FlowPredicate } from "./combinators.ts";
import { FilterError } from "./errors.ts";
import { httpOf } from "./l7.ts";
import { compileRegexps } from "./regex.ts";

/** Cilium monitor message type of L7 access-log records (MessageTypeAccessLog). */
export const ACCESS_LOG_EVENT_TYPE = 129;

const STATUS_FULL = /^[1-5][0-9]{2}$/;
const STATUS_CLASS = /^([1-5][0-9]?)\+$/;
/** RFC 9110 token characters: an HTTP method is one token. */
const METHOD = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * As in Hubble, an HTTP criterion combined with an event_type filter needs
 * that filter to include L7 (access log) events, else nothing could match.
 */
function requireL7EventType(field: string, ff: FlowFilter): void {
  if (ff.eventType.length === 0) return;
  if (ff.eventType.some((t) => t.type === ACCESS_LOG_EVENT_TYPE)) return;
  throw new FilterError(field, "requires the event_type filter to include L7 events (type 129)");
}

/** "200" exact codes, "5+" / "40+" code prefixes. */
function statusCodeFilter(values: readonly string[]): FlowPredicate {
  const full: string[] = [];
  const prefixes: string[] = [];
  for (const value of values) {
    const cls = STATUS_CLASS.exec(value);
    if (STATUS_FULL.test(value)) full.push(value);
    else if (cls?.[1]) prefixes.push(cls[1]);
    else throw new FilterError("http_status_code", `invalid status code ${JSON.stringify(value)}`);
  }
  return (flow) => {
    const http = httpOf(flow);
    if (!http || http.code === 0) return false;
    const code = String(http.code).padStart(3, "0");
    return full.includes(code) || prefixes.some((p) => code.startsWith(p));
  };
}

function methodFilter(values: readonly string[]): FlowPredicate {
  for (const value of values) {
    if (!METHOD.test(value)) {
      throw new FilterError("http_method", `invalid method ${JSON.stringify(value)}`);
    }
  }
  const methods = new Set(values.map((m) => m.toUpperCase()));
  return (flow) => {
    const method = httpOf(flow)?.method ?? "";
    return method !== "" && methods.has(method.toUpperCase());
  };
}

/** The decoded path of an absolute URL or absolute path, as Go's url.ParseRequestURI gives it. */
function requestPath(url: string): string | undefined {
  if (url === "") return undefined;
  try {
    const path = new URL(url, url.startsWith("/") ? "http://localhost" : undefined).pathname;
    try {
      return decodeURIComponent(path);
    } catch {
      return path;
    }
  } catch {
    return undefined;
  }
}

function headerFilter(headers: FlowFilter["httpHeader"]): FlowPredicate {
  for (const h of headers) {
    if (h.key === "") throw new FilterError("http_header", "header key must not be empty");
  }
  return (flow) => {
    const have = httpOf(flow)?.headers ?? [];
    return have.some((h) => headers.some((want) => want.key === h.key && want.value === h.value));
  };
}

/**
 * http_status_code, http_method, http_path, http_url, http_header: only flows
 * carrying an HTTP record can match. Paths and URLs are RE2-style regular
 * expressions searched in the request path / URL; headers match key and value
 * exactly; methods case-insensitively.
 */
export const httpFilter: FilterBuilder = {
  fields: ["http_status_code", "http_method", "http_path", "http_url", "http_header"],
  build(ff) {
    const out: FlowPredicate[] = [];
    if (ff.httpStatusCode.length > 0) {
      requireL7EventType("http_status_code", ff);
      out.push(statusCodeFilter(ff.httpStatusCode));
    }
    if (ff.httpMethod.length > 0) {
      requireL7EventType("http_method", ff);
      out.push(methodFilter(ff.httpMethod));
    }
    if (ff.httpPath.length > 0) {
      requireL7EventType("http_path", ff);
      const res = compileRegexps("http_path", ff.httpPath);
      out.push((flow) => {
        const path = requestPath(httpOf(flow)?.url ?? "");
        return path !== undefined && res.some((re) => re.test(path));
      });
    }
    if (ff.httpUrl.length > 0) {
      requireL7EventType("http_url", ff);
      const res = compileRegexps("http_url", ff.httpUrl);
      out.push((flow) => {
        const url = httpOf(flow)?.url ?? "";
        return url !== "" && res.some((re) => re.test(url));
      });
    }
    if (ff.httpHeader.length > 0) {
      requireL7EventType("http_header", ff);
      out.push(headerFilter(ff.httpHeader));
    }
    return out;
  },
};
