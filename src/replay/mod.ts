/**
 * Replay of input logs (`rtcv_scraper_client -replay FILE`).
 *
 * @module
 */

export { API_KEY_ENV_VAR, REPLAY_FILE_EXIT_CODE, type ReplayOptions, runReplay } from "./replay.ts";
export { formatDuration, formatReplayLine, type ReplayLine } from "./format_replay_line.ts";
export { emptyCounts, formatReplaySummary, formatRoundSummary, type ReplayCounts } from "./replay_summary.ts";
export { CREDENTIAL_COMMANDS, type RestoredLine, restoreRedactedKey } from "./restore_redacted_key.ts";
