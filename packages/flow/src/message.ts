import { create, type DescMessage, type MessageShape, ScalarType } from "@bufbuild/protobuf";

/** google.protobuf.Edition.EDITION_PROTO3: every non-message field has implicit presence. */
const EDITION_PROTO3 = 999;

/**
 * A function returning zero messages of `schema`, equal to `create(schema)`
 * but several times cheaper: `create` walks the descriptor on every call,
 * this copies a zero template made once and gives each copy its own lists,
 * maps, oneof holders and byte arrays. Only proto3 messages (no presence
 * tracked through the prototype chain) take the fast path; others fall back to
 * `create`. Set fields on the result directly; nested messages need their own
 * factory (or `create`).
 */
export function messageFactory<Desc extends DescMessage>(schema: Desc): () => MessageShape<Desc> {
  if (schema.file.edition !== EDITION_PROTO3) return () => create(schema);
  const template: MessageShape<Desc> = create(schema);
  const lists: string[] = [];
  const maps: string[] = [];
  const oneofs: string[] = [];
  const bytes: string[] = [];
  const zero = template as Record<string, unknown>;
  for (const member of schema.members) {
    if (member.kind === "oneof") oneofs.push(member.localName);
    else if (member.fieldKind === "list") lists.push(member.localName);
    else if (member.fieldKind === "map") maps.push(member.localName);
    else if (member.fieldKind === "scalar" && member.scalar === ScalarType.BYTES) {
      // only implicit-presence bytes are in the template; optional ones stay unset
      if (zero[member.localName] instanceof Uint8Array) bytes.push(member.localName);
    }
  }
  return () => {
    const msg = { ...template };
    const fields = msg as Record<string, unknown>;
    for (const name of lists) fields[name] = [];
    for (const name of maps) fields[name] = {};
    for (const name of oneofs) fields[name] = { case: undefined };
    for (const name of bytes) fields[name] = new Uint8Array(0);
    return msg;
  };
}
