import {
  type CelEnv,
  CelScalar,
  type CelType,
  celEnv,
  isCelError,
  listType,
  mapType,
  objectType,
  parse,
  plan,
} from "@bufbuild/cel";
import { strings } from "@bufbuild/cel/ext";
import { createRegistry, type DescField, type DescMessage, ScalarType } from "@bufbuild/protobuf";
import { reflect } from "@bufbuild/protobuf/reflect";
import { type Flow, FlowSchema, file_flow_flow, processV1 } from "@periscope/proto";
import type { FlowPredicate } from "./combinators.ts";

/** The variable a CEL expression sees the flow as, as in Hubble. */
export const CEL_FLOW_VARIABLE = "_flow";

// periscope.process.v1 too: `_flow.extensions` (an Any) unpacks to the flow's Process.
const registry = createRegistry(file_flow_flow, processV1.file_periscope_process_v1_process);

/**
 * The environment every expression compiles in: container `flow` (so
 * `Verdict.DROPPED` names flow.Verdict.DROPPED), `_flow` bound to flow.Flow,
 * the standard library plus the strings extension.
 */
const env: CelEnv = celEnv({
  namespace: "flow",
  registry,
  variables: { [CEL_FLOW_VARIABLE]: objectType(FlowSchema) },
  funcs: strings,
});

let evaluationErrors = 0;
const errorListeners = new Set<(message: string) => void>();

/**
 * Calls `listener` with the reason each time evaluating a CEL expression on a
 * flow fails (the flow then counts as no match); returns the unsubscribe.
 */
export function onCelEvaluationError(listener: (message: string) => void): () => void {
  errorListeners.add(listener);
  return () => {
    errorListeners.delete(listener);
  };
}

/**
 * Number of times evaluating a CEL expression against a flow failed (e.g. a
 * missing map key, a division by zero) or gave a non-bool value since the
 * process started; each such evaluation counted as no match.
 */
export function celEvaluationErrors(): number {
  return evaluationErrors;
}

/** A CEL expression that does not parse or type-check; `message` says why. */
export class CelCompileError extends Error {
  override readonly name = "CelCompileError";
}

/**
 * Compile CEL expressions (Hubble's `experimental.cel_expression`): each is
 * parsed and type-checked against flow.Flow once and must be boolean; the
 * predicate is true when any expression is true for the flow. An expression
 * that fails to evaluate on a flow is no match for it and is counted
 * (celEvaluationErrors).
 * @throws CelCompileError naming the expression and the problem.
 */
export function compileCelExpressions(expressions: readonly string[]): FlowPredicate {
  const programs = expressions.map((source) => {
    let parsed: ReturnType<typeof parse>;
    try {
      parsed = parse(source);
    } catch (err) {
      throw new CelCompileError(`${JSON.stringify(source)}: ${(err as Error).message}`);
    }
    let type: CelType;
    try {
      type = typeOf(parsed.expr, new Map([[CEL_FLOW_VARIABLE, objectType(FlowSchema)]]));
    } catch (err) {
      throw new CelCompileError(`${JSON.stringify(source)}: ${(err as Error).message}`);
    }
    if (!isBoolLike(type)) {
      throw new CelCompileError(
        `${JSON.stringify(source)}: must return bool, returns ${String(type)}`,
      );
    }
    return plan(env, parsed);
  });
  if (programs.length === 1) {
    const [only] = programs as [(typeof programs)[0]];
    return (flow) => evaluate(only, flow);
  }
  return (flow) => programs.some((p) => evaluate(p, flow));
}

function evaluate(program: ReturnType<typeof plan>, flow: Flow): boolean {
  // A reflected message saves the evaluator wrapping the flow on each access.
  const out = program({ [CEL_FLOW_VARIABLE]: reflect(FlowSchema, flow, false) });
  if (out === true) return true;
  if (out === false) return false;
  evaluationErrors++;
  if (errorListeners.size > 0) {
    const message = isCelError(out) ? out.message : `result is not a bool: ${String(out)}`;
    for (const listener of errorListeners) listener(message);
  }
  return false;
}

// --- Type checking -------------------------------------------------------
// @bufbuild/cel plans and evaluates but its checker handles only constants
// and identifiers, so expressions are checked here: identifiers, fields of
// flow.Flow and nested messages, enum constants, and calls against the
// overloads the environment declares.

type Scope = ReadonlyMap<string, CelType>;
type Expr = ReturnType<typeof parse>["expr"];

const DYN = CelScalar.DYN;
const BOOL = CelScalar.BOOL;
const NUMERIC = new Set(["int", "uint", "double"]);
const TYPE_NAMES = new Set([
  "int",
  "uint",
  "double",
  "bool",
  "string",
  "bytes",
  "list",
  "map",
  "null_type",
  "type",
  "dyn",
]);

function isBoolLike(t: CelType): boolean {
  return t.kind === "scalar" && (t.scalar === "bool" || t.scalar === "dyn");
}

function isDyn(t: CelType): boolean {
  return t.kind === "scalar" && t.scalar === "dyn";
}

function isNumeric(t: CelType): boolean {
  return t.kind === "scalar" && NUMERIC.has(t.scalar);
}

/** Whether a value of type `arg` may be passed where `param` is declared. */
function assignable(param: CelType, arg: CelType): boolean {
  if (isDyn(param) || isDyn(arg)) return true;
  if (param.kind !== arg.kind) return false;
  switch (param.kind) {
    case "scalar":
      return param.scalar === (arg as typeof param).scalar;
    case "list":
      return assignable(param.element, (arg as typeof param).element);
    case "map":
      return (
        assignable(param.key, (arg as typeof param).key) &&
        assignable(param.value, (arg as typeof param).value)
      );
    case "object":
      return param.name === (arg as typeof param).name;
  }
}

function sameType(a: CelType, b: CelType): boolean {
  return assignable(a, b) && assignable(b, a) && !isDyn(a) && !isDyn(b);
}

function scalarOf(t: ScalarType): CelType {
  switch (t) {
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return CelScalar.DOUBLE;
    case ScalarType.UINT32:
    case ScalarType.UINT64:
    case ScalarType.FIXED32:
    case ScalarType.FIXED64:
      return CelScalar.UINT;
    case ScalarType.BOOL:
      return CelScalar.BOOL;
    case ScalarType.STRING:
      return CelScalar.STRING;
    case ScalarType.BYTES:
      return CelScalar.BYTES;
    default:
      return CelScalar.INT;
  }
}

const WRAPPERS: Readonly<Record<string, CelType>> = {
  "google.protobuf.BoolValue": CelScalar.BOOL,
  "google.protobuf.BytesValue": CelScalar.BYTES,
  "google.protobuf.DoubleValue": CelScalar.DOUBLE,
  "google.protobuf.FloatValue": CelScalar.DOUBLE,
  "google.protobuf.Int32Value": CelScalar.INT,
  "google.protobuf.Int64Value": CelScalar.INT,
  "google.protobuf.UInt32Value": CelScalar.UINT,
  "google.protobuf.UInt64Value": CelScalar.UINT,
  "google.protobuf.StringValue": CelScalar.STRING,
  "google.protobuf.Any": DYN,
  "google.protobuf.Value": DYN,
  "google.protobuf.Struct": mapType(CelScalar.STRING, DYN),
  "google.protobuf.ListValue": listType(DYN),
};

function messageType(desc: DescMessage): CelType {
  return WRAPPERS[desc.typeName] ?? objectType(desc);
}

function fieldType(field: DescField): CelType {
  switch (field.fieldKind) {
    case "scalar":
      return scalarOf(field.scalar);
    case "enum":
      return CelScalar.INT;
    case "message":
      return messageType(field.message);
    case "list":
      return listType(
        field.listKind === "scalar"
          ? scalarOf(field.scalar)
          : field.listKind === "enum"
            ? CelScalar.INT
            : messageType(field.message),
      );
    case "map": {
      const value =
        field.mapKind === "scalar"
          ? scalarOf(field.scalar)
          : field.mapKind === "enum"
            ? CelScalar.INT
            : messageType(field.message);
      const key = scalarOf(field.mapKey);
      return mapType(key as Parameters<typeof mapType>[0], value);
    }
  }
}

/** `a.b.c` when expr is a chain of selects ending in an identifier. */
function qualifiedName(expr: Expr): string | undefined {
  const k = expr.exprKind;
  if (k.case === "identExpr") return k.value.name;
  if (k.case === "selectExpr" && !k.value.testOnly && k.value.operand) {
    const left = qualifiedName(k.value.operand);
    return left === undefined ? undefined : `${left}.${k.value.field}`;
  }
  return undefined;
}

/** An enum constant such as `Verdict.DROPPED` or `flow.Verdict.DROPPED`. */
function isEnumConstant(name: string): boolean {
  const dot = name.lastIndexOf(".");
  if (dot < 0) return false;
  const enumName = name.slice(0, dot);
  const valueName = name.slice(dot + 1);
  for (const candidate of [`flow.${enumName}`, enumName.replace(/^\./, "")]) {
    const e = registry.getEnum(candidate);
    if (e?.values.some((v) => v.name === valueName)) return true;
  }
  return false;
}

function typeOf(expr: Expr, scope: Scope): CelType {
  const k = expr.exprKind;
  switch (k.case) {
    case "constExpr":
      switch (k.value.constantKind.case) {
        case "boolValue":
          return CelScalar.BOOL;
        case "int64Value":
          return CelScalar.INT;
        case "uint64Value":
          return CelScalar.UINT;
        case "doubleValue":
          return CelScalar.DOUBLE;
        case "stringValue":
          return CelScalar.STRING;
        case "bytesValue":
          return CelScalar.BYTES;
        case "nullValue":
          return CelScalar.NULL;
        default:
          return DYN;
      }
    case "identExpr": {
      const t = scope.get(k.value.name);
      if (t) return t;
      if (TYPE_NAMES.has(k.value.name)) return CelScalar.TYPE;
      throw new Error(`undeclared reference to '${k.value.name}'`);
    }
    case "selectExpr": {
      const sel = k.value;
      const name = qualifiedName(expr);
      const root = name?.split(".")[0];
      if (name !== undefined && root !== undefined && !scope.has(root)) {
        if (isEnumConstant(name)) return CelScalar.INT;
        throw new Error(`undeclared reference to '${name}'`);
      }
      if (!sel.operand) throw new Error("field selection without an operand");
      const operand = typeOf(sel.operand, scope);
      const result = selectField(operand, sel.field);
      return sel.testOnly ? BOOL : result;
    }
    case "callExpr":
      return typeOfCall(k.value.function, k.value.target, k.value.args, scope);
    case "listExpr": {
      const elems = k.value.elements.map((e) => typeOf(e, scope));
      const first = elems[0];
      return listType(first && elems.every((e) => sameType(e, first)) ? first : DYN);
    }
    case "structExpr": {
      for (const entry of k.value.entries) {
        if (entry.value) typeOf(entry.value, scope);
        if (entry.keyKind.case === "mapKey") typeOf(entry.keyKind.value, scope);
      }
      if (k.value.messageName === "") return mapType(DYN, DYN);
      const desc =
        registry.getMessage(`flow.${k.value.messageName}`) ??
        registry.getMessage(k.value.messageName);
      if (!desc) throw new Error(`undeclared reference to '${k.value.messageName}'`);
      return objectType(desc);
    }
    case "comprehensionExpr": {
      const c = k.value;
      if (!c.iterRange || !c.accuInit || !c.loopCondition || !c.loopStep || !c.result) {
        throw new Error("incomplete comprehension");
      }
      const range = typeOf(c.iterRange, scope);
      let elem: CelType;
      if (range.kind === "list") elem = range.element;
      else if (range.kind === "map") elem = range.key;
      else if (isDyn(range)) elem = DYN;
      else
        throw new Error(
          `expression of type '${String(range)}' cannot be the range of a comprehension`,
        );
      const accu = typeOf(c.accuInit, scope);
      const inner = new Map(scope);
      inner.set(c.iterVar, elem);
      inner.set(c.accuVar, accu);
      typeOf(c.loopCondition, inner);
      typeOf(c.loopStep, inner);
      const outer = new Map(scope);
      outer.set(c.accuVar, accu);
      return typeOf(c.result, outer);
    }
    default:
      throw new Error("empty expression");
  }
}

function selectField(operand: CelType, field: string): CelType {
  if (isDyn(operand)) return DYN;
  if (operand.kind === "map") return operand.value;
  if (operand.kind === "object") {
    const f = (operand.desc ?? registry.getMessage(operand.name))?.fields.find(
      (x) => x.name === field,
    );
    if (!f) throw new Error(`undefined field '${field}' on type '${operand.name}'`);
    return fieldType(f);
  }
  throw new Error(`type '${String(operand)}' does not support field selection`);
}

function typeOfCall(
  fn: string,
  targetExpr: Expr | undefined,
  argExprs: readonly Expr[],
  scope: Scope,
): CelType {
  const target = targetExpr ? typeOf(targetExpr, scope) : undefined;
  const args = argExprs.map((a) => typeOf(a, scope));
  const describe = () =>
    `'${fn}' applied to '${target ? `${String(target)}.` : ""}(${args.map(String).join(", ")})'`;
  switch (fn) {
    case "_&&_":
    case "_||_":
    case "@not_strictly_false":
      if (!args.every(isBoolLike)) throw new Error(`found no matching overload for ${describe()}`);
      return BOOL;
    case "_?_:_": {
      const [cond, a, b] = args as [CelType, CelType, CelType];
      if (!isBoolLike(cond)) throw new Error(`found no matching overload for ${describe()}`);
      return sameType(a, b) ? a : DYN;
    }
    case "_[_]": {
      const [container, index] = args as [CelType, CelType];
      if (container.kind === "list") {
        if (!isDyn(index) && !isNumeric(index))
          throw new Error(`found no matching overload for ${describe()}`);
        return container.element;
      }
      if (container.kind === "map") return container.value;
      if (isDyn(container)) return DYN;
      throw new Error(`found no matching overload for ${describe()}`);
    }
    case "_==_":
    case "_!=_": {
      const [a, b] = args as [CelType, CelType];
      const comparable =
        isDyn(a) ||
        isDyn(b) ||
        (isNumeric(a) && isNumeric(b)) ||
        (a.kind === "scalar" && a.scalar === "null_type") ||
        (b.kind === "scalar" && b.scalar === "null_type") ||
        (assignable(a, b) && assignable(b, a));
      if (!comparable) throw new Error(`found no matching overload for ${describe()}`);
      return BOOL;
    }
    case "_<_":
    case "_<=_":
    case "_>_":
    case "_>=_":
      if (args.every((a) => isNumeric(a) || isDyn(a))) return BOOL;
      break;
  }
  const group = env.funcs.find(fn);
  if (!group) throw new Error(`undeclared reference to '${fn}'`);
  const results: CelType[] = [];
  for (const overload of group) {
    if ((overload.target === undefined) !== (target === undefined)) continue;
    if (overload.target && target && !assignable(overload.target, target)) continue;
    if (overload.arguments.length !== args.length) continue;
    if (!overload.arguments.every((p, i) => assignable(p, args[i] as CelType))) continue;
    results.push(overload.result);
  }
  const first = results[0];
  if (!first) throw new Error(`found no matching overload for ${describe()}`);
  return results.every((r) => sameType(r, first)) ? first : DYN;
}
