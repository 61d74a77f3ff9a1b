// Skip's own jsonExtract, for tests/graph/test_json_extract_skip.py (our code, run against
// Skip's runtime). Copied next to Skip's npm packages and run:  node json_extract.mjs CASES.json
// CASES.json is [{value, pattern}...]; prints [{ok: matches} | {error: message}...].
// Each case runs in createGraph, the one place a Context is at hand without a request.
import { initService } from "@skipruntime/wasm";
import { readFileSync } from "node:fs";

const cases = JSON.parse(readFileSync(process.argv[2], "utf8"));
const results = [];

class Inputs {
  instantiate(collections) {
    return collections.input;
  }
}

const service = {
  initialData: { input: [] },
  resources: { inputs: Inputs },
  createGraph(inputs, context) {
    for (const { value, pattern } of cases) {
      try {
        results.push({ ok: context.jsonExtract(value, pattern) });
      } catch (e) {
        results.push({ error: String(e?.message ?? e) });
      }
    }
    return inputs;
  },
};

const instance = await initService(service);
process.stdout.write(JSON.stringify(results));
await instance.close();
