import { AIKeyRotator } from "@ai-key-rotator/node";
import fs from "fs";
const rotator = new AIKeyRotator({
providers: { /* ... */ },
persistence: {
save: (state) => fs.writeFileSync("state.json", state),
load: () => {
try { return fs.readFileSync("state.json", "utf-8"); }
catch { return null; }
},
},
});
// Restore previous state on startup
await rotator.load();
