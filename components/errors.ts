/**
 * The project's error sentence for bad component args, thrown before any child resource exists:
 * `<Kind> "<name>": <field> must <rule>, but <value> was provided. <how to fix>`.
 */
export function invalidArg(
  kind: string,
  name: string,
  field: string,
  rule: string,
  value: unknown,
  fix: string,
): never {
  throw new Error(
    `${kind} "${name}": ${field} must ${rule}, but ${JSON.stringify(value)} was provided. ${fix}`,
  );
}
