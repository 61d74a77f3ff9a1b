// Skip's own client against skiff: SkipServiceBroker (@skipruntime/helpers 0.0.15) for every
// control call, and the stream read on the streaming port as a browser reads it.
//   node skip_client.mjs HELPERS_INDEX_JS HOST STREAMING_PORT CONTROL_PORT
// Prints one JSON object: what each call returned, and the stream's first two events.
import { pathToFileURL } from "node:url";

const [helpersPath, host, streamingPort, controlPort] = process.argv.slice(2);
const { SkipServiceBroker } = await import(pathToFileURL(helpersPath).href);

const broker = new SkipServiceBroker(
  { host, streaming_port: Number(streamingPort), control_port: Number(controlPort) },
  5000,
);

// The next SSE event of a fetch() body: its "event:" and "data:" fields.
async function nextEvent(reader, state) {
  const decoder = new TextDecoder();
  for (;;) {
    const end = state.buffer.indexOf("\n\n");
    if (end >= 0) {
      const block = state.buffer.slice(0, end);
      state.buffer = state.buffer.slice(end + 2);
      const fields = {};
      for (const line of block.split("\n")) {
        const colon = line.indexOf(":");
        fields[line.slice(0, colon)] = line.slice(colon + 1).trimStart();
      }
      if (fields.data === "[]" && fields.id === undefined) continue; // a heartbeat
      return { event: fields.event, data: JSON.parse(fields.data) };
    }
    const { value, done } = await reader.read();
    if (done) throw new Error("the stream ended");
    state.buffer += decoder.decode(value, { stream: true });
  }
}

const out = {};
await broker.update("votes", [["skip-1", [{ post: 3, user: "skip" }]]]);
out.all = await broker.getAll("top", { limit: 5 });
out.array = await broker.getArray("top", { limit: 5 }, 3);
out.unique = await broker.getUnique("top", { limit: 5 }, 3);
const uuid = await broker.getStreamUUID("top", { limit: 5 });
const response = await fetch(`http://${host}:${streamingPort}/v1/streams/${uuid}`, {
  headers: { Accept: "text/event-stream" },
});
out.status = response.status;
const reader = response.body.getReader();
const state = { buffer: "" };
out.first = await nextEvent(reader, state);
await broker.deleteKey("votes", "skip-1");
out.second = await nextEvent(reader, state);
await reader.cancel();
await broker.deleteUUID(uuid);
out.after = await broker.getAll("top", { limit: 5 });
console.log(JSON.stringify(out));
