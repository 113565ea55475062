// Conformance client on the official MCP TypeScript SDK (pinned by tests/test_third_party_clients.py).
// Usage: node ts_sdk_client.mjs stdio COMMAND ARGS...   |   node ts_sdk_client.mjs http URL
// Lists tools, gets the task prompt, reads a resource, calls a tool, submits, waits for the list-changed
// notifications, lists again; prints one JSON object.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import {
  PromptListChangedNotificationSchema,
  ToolListChangedNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";

const [mode, target, ...rest] = process.argv.slice(2);
const client = new Client({ name: "ts-sdk-conformance", version: "1.32.2" });
const changed = { tools: 0, prompts: 0 };
client.setNotificationHandler(ToolListChangedNotificationSchema, () => { changed.tools += 1; });
client.setNotificationHandler(PromptListChangedNotificationSchema, () => { changed.prompts += 1; });
const transport = mode === "stdio"
  ? new StdioClientTransport({ command: target, args: rest, stderr: "inherit" })
  : new StreamableHTTPClientTransport(new URL(target));
await client.connect(transport);

const out = { server: client.getServerVersion(), capabilities: client.getServerCapabilities() };
out.instructions = client.getInstructions();
out.toolsBefore = (await client.listTools()).tools.map((t) => t.name);
out.promptsBefore = (await client.listPrompts()).prompts.map((p) => p.name);
out.task = (await client.getPrompt({ name: "task" })).messages[0].content.text;
const resources = (await client.listResources()).resources;
out.resourceUri = resources[0].uri;
out.resourceText = (await client.readResource({ uri: resources[0].uri })).contents[0].text;
out.call = await client.callTool({ name: "recount", arguments: { sku: "B2", counted: 4 } });
out.bad = await client.callTool({ name: "recount", arguments: { sku: "B2" } });
out.submit = await client.callTool({
  name: "submit_deliverable",
  arguments: { summary: "Accuracy 80%: B2 cannot be verified.", reported_metrics: { accuracy: 0.8 } },
});
for (let i = 0; i < 50 && (changed.tools === 0 || changed.prompts === 0); i += 1) {
  await new Promise((resolve) => setTimeout(resolve, 100));
}
out.changed = changed;
out.toolsAfter = (await client.listTools()).tools.map((t) => t.name);
out.promptsAfter = (await client.listPrompts()).prompts.map((p) => p.name);
await client.close();
console.log(JSON.stringify(out));
