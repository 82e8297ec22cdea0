/**
 * The credentials the page sends: the login form keeps the Authorization header value in
 * sessionStorage (this tab only); every client the page makes sends it
 * ({@link withStoredAuth}), the stream worker gets it in its start message.
 */
import type { Interceptor } from "@connectrpc/connect";

/** Where the Authorization header value is kept for this tab. */
export const AUTH_KEY = "periscope.authorization";

/** The stored Authorization header value, if any (sessionStorage may be unavailable). */
export function storedAuth(): string | undefined {
  try {
    return sessionStorage.getItem(AUTH_KEY) ?? undefined;
  } catch {
    return undefined;
  }
}

/** Keeps (or, with undefined, forgets) the Authorization header value for this tab. */
export function storeAuth(header: string | undefined): void {
  try {
    if (header === undefined) sessionStorage.removeItem(AUTH_KEY);
    else sessionStorage.setItem(AUTH_KEY, header);
  } catch {
    // Not kept across reloads; the page still uses it until then.
  }
}

/** A Connect interceptor that sends the stored Authorization header on every call. */
export const withStoredAuth: Interceptor = (next) => (req) => {
  const auth = storedAuth();
  if (auth !== undefined) req.header.set("Authorization", auth);
  return next(req);
};
