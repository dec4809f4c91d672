/**
 * A small scraper that uses the client through `mod.ts` in mock mode: nothing is sent anywhere and the
 * real cache is not touched, so it is safe to run anywhere.
 *
 *     deno run --allow-run examples/mock_scraper.ts
 *
 * It prints one line per step on stdout.
 *
 * @module
 */
// deno-lint-ignore-file no-console -- an example program: printing is its job
import { ScraperClient, ScraperClientError } from "../mod.ts";

// A real scraper would fetch these from a website.
const scraped = [
  { referenceNumber: "vacancy-1", presentation: "Experienced welder", driversLicenses: ["B"] },
  { referenceNumber: "vacancy-2", presentation: "Junior developer" },
  { referenceNumber: "vacancy-1", presentation: "Experienced welder (seen again)" },
];

await using client = await ScraperClient.spawn();
await client.setMock({ secrets: { login: { username: "scraper", password: "hunter2" } } });

const login = await client.getUserSecret({ key: "login", encryptionKey: "not used in mock mode" });
console.log(`login: ${login.username}`);

for (const cv of scraped) {
  if (await client.hasCachedReference(cv.referenceNumber)) {
    console.log(`skip ${cv.referenceNumber}: already scraped`);
    continue;
  }
  const matched = await client.sendCv(cv);
  console.log(`sent ${cv.referenceNumber}: ${matched ? "matched" : "no match"}`);
}

// Sends may also run concurrently: the answers come back matched to their calls.
const results = await Promise.all(
  ["vacancy-3", "vacancy-4", "vacancy-3"].map((referenceNumber) => client.sendCv({ referenceNumber })),
);
console.log(`concurrent sends: ${results.join(", ")}`);

try {
  await client.sendCv({ referenceNumber: "" });
} catch (error) {
  if (!(error instanceof ScraperClientError)) throw error;
  console.log(`rejected: ${error.message}`);
}

const status = await client.close();
console.log(`client exited with code ${status.code}`);
