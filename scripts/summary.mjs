// Prints `N passed, N failed` from vitest's JSON report; exits 1 when tests failed,
// none ran, or the report is missing (a crashed run must not look green).
import { readFileSync } from "node:fs";

const file = process.argv[2] ?? "reports/vitest.json";
let report;
try {
  report = JSON.parse(readFileSync(file, "utf8"));
} catch {
  console.log("0 passed, 1 failed");
  console.error(`summary: no vitest report at ${file}`);
  process.exit(1);
}
const passed = report.numPassedTests ?? 0;
// A file that failed without a failed test (an import error, a failing hook) counts once.
const brokenFiles = (report.testResults ?? []).filter(
  (f) => f.status === "failed" && !(f.assertionResults ?? []).some((a) => a.status === "failed"),
).length;
const failed = (report.numFailedTests ?? 0) + brokenFiles;
const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
