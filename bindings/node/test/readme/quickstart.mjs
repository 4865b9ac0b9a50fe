import { AIKeyRotator } from "@ai-key-rotator/node";
const rotator = new AIKeyRotator({
providers: {
openai: {
credentials: [
{ key: "sk-key1", label: "personal" },
{ key: "sk-key2", label: "work" },
],
cooldown: { type: "fixed", durationMs: 60_000 }, // 1 min cooldown
},
google: {
credentials: [
{ key: "AIza-1", meta: { model: "gemini-flash" } },
{ key: "AIza-2", meta: { model: "gemini-pro" } },
],
// default: resets at midnight UTC
},
},
});
// Get an available key
const cred = rotator.getKey("openai");
if (cred) {
console.log(cred.key); // "sk-key1"
}
// On rate limit error, mark it and auto-rotate
rotator.markExhausted("openai", "sk-key1");
// Next call gets the next available key
const next = rotator.getKey("openai"); // "sk-key2"
