/**
 * The commands of the job-data ingestion sink: `set_ingest`, `store_data`, `flush_data`,
 * `ingest_status`, `next_keyword` and `get_tokens`.
 *
 * @module
 */

import { z } from "zod";
import { type CommandDefinition, defineBareCommand, defineCommand, exclusive } from "../commands/registry.ts";
import { okAnswer } from "../protocol/answers.ts";
import type { IngestService } from "./ingest_service.ts";
import { DATA_TYPES, PLATFORMS } from "./streams.ts";

const dataTypeSchema = z.enum(DATA_TYPES, { error: `must be one of ${quoted(DATA_TYPES)}` });
const platformSchema = z.enum(PLATFORMS, { error: `must be one of ${quoted(PLATFORMS)}` });

const itemSchema = z.custom<Record<string, unknown>>(
  (value) => value !== null && typeof value === "object" && !Array.isArray(value),
  { error: "must be a JSON object (one item)" },
);
const itemsSchema = z.array(itemSchema, { error: "must be a non-empty array of objects" })
  .min(1, { error: "must be a non-empty array of objects, got an empty array" });

/** `set_ingest` content: `{base_url, token}`. */
export const setIngestSchema = z.object({
  base_url: z.string({ error: "must be a string like https://ingest.example.com" })
    .regex(/^https?:\/\/./i, { error: "must start with http:// or https://" }),
  token: z.string({ error: "must be a non-empty string (the ingest token)" })
    .min(1, { error: "must be a non-empty string (the ingest token), got an empty string" }),
}, { error: "must be an object {base_url, token}" });

/** `store_data` content; `data_list` is accepted as another name for `items`. */
export const storeDataSchema = z.object({
  data_type: dataTypeSchema,
  platform: platformSchema,
  items: itemsSchema.optional(),
  data_list: itemsSchema.optional(),
  dedupe_key: z.string({ error: "must be a field name (a string)" })
    .min(1, { error: "must be a field name, got an empty string" })
    .max(200, { error: "must be a field name of at most 200 characters" })
    .optional(),
}, { error: "must be an object {data_type, platform, items, dedupe_key?}" }).check((context) => {
  const { items, data_list } = context.value;
  if (items === undefined && data_list === undefined) {
    context.issues.push({
      code: "custom",
      input: context.value,
      path: ["items"],
      message: "is missing; expected a non-empty array of objects (data_list is accepted as another name)",
    });
  } else if (items !== undefined && data_list !== undefined) {
    context.issues.push({
      code: "custom",
      input: context.value,
      path: [],
      message: "has both items and data_list; send the items in one of them",
    });
  }
});

/** `flush_data` content: none, or `{timeout_ms}` to wait another time than the default. */
export const flushDataSchema = z.object({
  timeout_ms: z.number({ error: "must be a number of milliseconds" }).int({ error: "must be a whole number" })
    .min(0, { error: "must be 0 or more" }).max(3_600_000, { error: "must be at most 3600000 (one hour)" })
    .optional(),
}, { error: "must be an object {timeout_ms?} or absent" }).nullish();

/** `next_keyword` content: none, or `{platform}`. */
export const nextKeywordSchema = z.object({ platform: platformSchema.optional() }, {
  error: "must be an object {platform?} or absent",
}).nullish();

/**
 * The ingestion commands, for `registry.registerAll(ingestCommands(service))`. `set_ingest` is
 * exclusive: lines after it wait until it is done, so they see the new server.
 */
export function ingestCommands(service: IngestService): Record<string, CommandDefinition> {
  return {
    // A malformed address or token rejects with an IngestServerError, answered with its message.
    set_ingest: exclusive(defineCommand(setIngestSchema, async ({ base_url, token }) => {
      await service.configure({ baseUrl: base_url, token });
      return okAnswer();
    })),
    // Not async: the parsed items must not stay referenced by this frame while the line commits.
    store_data: defineCommand(storeDataSchema, (content) =>
      service.store({
        dataType: content.data_type,
        platform: content.platform,
        items: (content.items ?? content.data_list)!,
        dedupeKey: content.dedupe_key,
      }).then(({ queued, skipped }) => okAnswer({ queued, skipped }))),
    flush_data: defineCommand(flushDataSchema, async (content) => {
      return okAnswer(await service.flush(content?.timeout_ms ?? undefined));
    }),
    ingest_status: defineBareCommand(async () => okAnswer(await service.status())),
    next_keyword: defineCommand(nextKeywordSchema, async (content) => {
      return okAnswer(await service.nextKeyword(content?.platform));
    }),
    get_tokens: defineBareCommand(async () => okAnswer(await service.getTokens())),
  };
}

function quoted(values: readonly string[]): string {
  return values.map((value) => JSON.stringify(value)).join(", ");
}
