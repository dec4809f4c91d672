import type { z } from "zod";
import { describeJsonValue } from "../protocol/command_line.ts";

/**
 * Turns zod issues into one sentence naming the field and what was expected, e.g.
 * `content.referenceNumber must be a non-empty string, got a number`. Values are never quoted,
 * since content can hold secrets.
 */
export function describeIssues(issues: readonly z.core.$ZodIssue[], content: unknown): string {
  const flat = issues.flatMap((issue) => unionBranchIssues(issue) ?? [issue]);
  return flat.slice(0, 3).map((issue) => describeIssue(issue, content)).join("; ") +
    (flat.length > 3 ? ` (and ${flat.length - 3} more problems)` : "");
}

/**
 * For a union whose value matched one branch's basic type (an object where the branches are an object and
 * an array), that branch's issues, with full paths: they name the field. Null when no branch fits.
 */
function unionBranchIssues(issue: z.core.$ZodIssue): z.core.$ZodIssue[] | null {
  if (issue.code !== "invalid_union" || !Array.isArray(issue.errors)) return null;
  const fitting = issue.errors.filter((branch) =>
    branch.length > 0 && !branch.some((inner) => inner.code === "invalid_type" && inner.path.length === 0)
  );
  if (fitting.length !== 1) return null;
  return fitting[0].flatMap((inner) => {
    const absolute = { ...inner, path: [...issue.path, ...inner.path] } as z.core.$ZodIssue;
    return unionBranchIssues(absolute) ?? [absolute];
  });
}

function describeIssue(issue: z.core.$ZodIssue, content: unknown): string {
  const path = fieldPath(issue.path);
  const actual = valueAt(content, issue.path);
  if (issue.code === "invalid_type") {
    const expected = expectedFromMessage(issue.message) ?? article(String(issue.expected));
    return actual === undefined
      ? `${path} is missing; expected ${expected}`
      : `${path} must be ${expected}, got ${describeValue(actual)}`;
  }
  if (issue.code === "unrecognized_keys") return `${path} has unknown fields`;
  return `${path} ${issue.message}`;
}

/** Lets a schema say `{ error: "must be ..." }`; that wording wins over the generic one. */
function expectedFromMessage(message: string): string | null {
  return message.startsWith("must be ") ? message.slice("must be ".length) : null;
}

function fieldPath(path: readonly PropertyKey[]): string {
  let text = "content";
  for (const part of path) text += typeof part === "number" ? `[${part}]` : `.${String(part)}`;
  return text;
}

function valueAt(content: unknown, path: readonly PropertyKey[]): unknown {
  let value = content;
  for (const part of path) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Record<PropertyKey, unknown>)[part];
  }
  return value;
}

/** Describes a value's kind without quoting it: `a number`, `null`, `an empty string`. */
export const describeValue: (value: unknown) => string = describeJsonValue;

function article(noun: string): string {
  return /^[aeiou]/.test(noun) ? `an ${noun}` : `a ${noun}`;
}
