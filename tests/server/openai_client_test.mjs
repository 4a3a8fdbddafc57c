// Talks to a running `rocmforge serve` with the official `openai` npm package (a client nobody here wrote).
// Usage: node openai_client_test.mjs <base_url> <model_id> [api_key]. Exit 0 when every check passes.
import OpenAI from 'openai';

const [baseURL, model, apiKey] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: apiKey || 'unused', maxRetries: 0, timeout: 60000 });
let failures = 0;
function check(cond, what) {
  if (!cond) {
    failures++;
    console.error('FAIL: ' + what);
  }
}
async function expectStatus(promise, status, cls, what) {
  try {
    await promise;
    check(false, what + ': no error');
  } catch (e) {
    check(e instanceof cls, what + ': error class ' + (e && e.constructor && e.constructor.name));
    check(e.status === status, what + ': status ' + e.status);
    check(typeof e.message === 'string' && e.message.length > 0, what + ': message');
  }
}
const messages = [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Say something.' }];

const models = await client.models.list();
check(models.data.length === 1 && models.data[0].id === model, 'models.list: ' + JSON.stringify(models.data));

const chat = await client.chat.completions.create({ model, messages, max_tokens: 12, temperature: 0.8, seed: 7 });
check(chat.object === 'chat.completion', 'chat object');
check(chat.choices[0].message.role === 'assistant', 'chat role');
check(typeof chat.choices[0].message.content === 'string', 'chat content');
check(['stop', 'length'].includes(chat.choices[0].finish_reason), 'chat finish_reason');
check(chat.usage.completion_tokens > 0 && chat.usage.total_tokens === chat.usage.prompt_tokens + chat.usage.completion_tokens, 'chat usage');

const stream = await client.chat.completions.create({
  model, messages, max_tokens: 12, temperature: 0.8, seed: 7, stream: true, stream_options: { include_usage: true },
});
let streamed = '', role = null, finish = null, usage = null;
for await (const chunk of stream) {
  check(chunk.object === 'chat.completion.chunk', 'chunk object');
  if (chunk.usage) usage = chunk.usage;
  for (const c of chunk.choices) {
    if (c.delta.role) role = c.delta.role;
    if (c.delta.content) streamed += c.delta.content;
    if (c.finish_reason) finish = c.finish_reason;
  }
}
check(role === 'assistant', 'stream role');
check(streamed === chat.choices[0].message.content, 'streamed chat text equals non-streamed: ' +
      JSON.stringify(streamed) + ' vs ' + JSON.stringify(chat.choices[0].message.content));
check(finish === chat.choices[0].finish_reason, 'stream finish_reason');
check(usage && usage.completion_tokens === chat.usage.completion_tokens, 'stream usage');

const comp = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 10, temperature: 0, n: 2 });
check(comp.object === 'text_completion', 'completion object');
check(comp.choices.length === 2 && comp.choices[1].index === 1, 'completion n=2');
check(comp.choices[0].text === comp.choices[1].text, 'greedy choices agree');
const cstream = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 10, temperature: 0, stream: true });
let ctext = '';
for await (const chunk of cstream) for (const c of chunk.choices) ctext += c.text;
check(ctext === comp.choices[0].text, 'streamed completion equals non-streamed');

const lp = await client.chat.completions.create({ model, messages, max_tokens: 3, temperature: 0, logprobs: true, top_logprobs: 2 });
check(lp.choices[0].logprobs.content.length === 3, 'logprobs entries');
check(lp.choices[0].logprobs.content[0].top_logprobs.length === 2, 'top_logprobs');

await expectStatus(client.chat.completions.create({ model, messages, temperature: 5 }), 400, OpenAI.BadRequestError, 'bad temperature');
await expectStatus(client.chat.completions.create({ model: 'no-such-model', messages }), 404, OpenAI.NotFoundError, 'unknown model');
await expectStatus(client.completions.create({ model, prompt: 'x', max_tokens: -1 }), 400, OpenAI.BadRequestError, 'negative max_tokens');
const bad = new OpenAI({ baseURL, apiKey: 'wrong-key', maxRetries: 0 });
if (apiKey) await expectStatus(bad.models.list(), 401, OpenAI.AuthenticationError, 'wrong api key');

if (failures > 0) {
  console.error(failures + ' check(s) failed');
  process.exit(1);
}
console.log('openai client: all checks passed');
