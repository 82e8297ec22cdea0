/**
 * @periscope/policy — the L3/L4 policy model: parse and validate policy files (YAML
 * or JSON), and compile policies into the kernel rule sets of bpf/include/policy.h.
 */
export { cidrContains, parseCidr } from "./src/cidr.ts";
export {
  type CompiledRuleSet,
  type CompiledSubject,
  compilePolicies,
  type PolicyDevice,
  type PolicyEndpoint,
  type SubjectResolver,
} from "./src/compile.ts";
export { PolicyError, type PolicyErrorLocation } from "./src/errors.ts";
export {
  type Cidr,
  MAX_POLICY_RULES,
  type Policy,
  type PolicyMode,
  type PolicyRule,
  type PortRange,
  type RuleAction,
  type RuleDirection,
  type RuleProtocol,
  type RuleSubject,
} from "./src/model.ts";
export { checkDistinct, parsePolicy, parsePolicyText, policyToJson } from "./src/parse.ts";
