/**
 * A command could not be done, for a reason the scraper author can act on.
 * The dispatcher answers `{"type":"error","content":"<command>: <message>"}`.
 */
export class CommandError extends Error {
  override name = "CommandError";
}
