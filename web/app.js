// The chat page: multi-turn conversation kept in memory only (a reload starts afresh), answers
// streamed and rendered as markdown (raw HTML in model output is shown as text, never run), the
// think block collapsed apart from the answer, Stop (or Escape) aborts the request; a finished
// answer can be copied or regenerated, a sent message edited, a failed turn retried. Settings and
// the API key live in sessionStorage: they survive a reload of this tab and nothing else.
import { ApiError, fetchModels, streamChat } from './chat-stream.js';
import { createMarkdown, StreamingMarkdown } from './markdown-stream.js';
import { actionButton, actionRow, copyButton, handleCodeCopies, openEditor, setActionsBusy } from './message-actions.js';
import { ThinkSplitter } from './think-splitter.js';

const $ = (id) => document.getElementById(id);
const els = {
  messages: $('messages'),
  hint: $('empty-hint'),
  form: $('composer'),
  prompt: $('prompt'),
  send: $('send'),
  stop: $('stop'),
  newChat: $('new-chat'),
  status: $('model-status'),
  modelSelect: $('model-select'),
  thinking: $('thinking'),
  system: $('system-prompt'),
  temperature: $('temperature'),
  topP: $('top-p'),
  topK: $('top-k'),
  maxTokens: $('max-tokens'),
  thinkingBudget: $('thinking-budget'),
  apiKey: $('api-key'),
};

// html: false in markdown-it: tags in the answer come out escaped, as text.
const md = createMarkdown(window.markdownit);

/** Sent back to the server on every turn: user messages and the answers (without their think blocks). */
let history = [];
let model = null;
let inflight = null;

// ---- settings (sessionStorage: this tab only) ----
const stored = ['thinking', 'thinkingBudget', 'system', 'temperature', 'topP', 'topK', 'maxTokens', 'apiKey'];
const storageKey = (name) => `grpst.${name}`;

function loadSettings() {
  for (const name of stored) {
    const value = sessionStorage.getItem(storageKey(name));
    if (value === null) continue;
    if (els[name].type === 'checkbox') els[name].checked = value === 'true';
    else els[name].value = value;
  }
}

function saveSetting(name) {
  const el = els[name];
  sessionStorage.setItem(storageKey(name), el.type === 'checkbox' ? String(el.checked) : el.value);
}

function numberOf(el) {
  if (el.value.trim() === '') return undefined;
  const n = Number(el.value);
  return Number.isFinite(n) ? n : undefined;
}

/**
 * A number setting holding text that is no number ("1e", "--1"): its value reads as empty, so
 * the server default would be used while the field still shows what was typed.
 */
function unreadableSetting() {
  return [els.thinkingBudget, els.temperature, els.topP, els.topK, els.maxTokens].find((el) => el.validity.badInput);
}

/** False, with the browser's note ("Please enter a number") beside the field, while a setting is unreadable. */
function settingsReadable() {
  const unreadable = unreadableSetting();
  if (!unreadable) return true;
  unreadable.focus();
  unreadable.reportValidity();
  return false;
}

function requestBody() {
  const messages = [];
  const system = els.system.value.trim();
  if (system) messages.push({ role: 'system', content: system });
  messages.push(...history);
  const body = { model, messages, enable_thinking: els.thinking.checked };
  const fields = { temperature: els.temperature, top_p: els.topP, top_k: els.topK, max_tokens: els.maxTokens, thinking_token_budget: els.thinkingBudget };
  for (const [key, el] of Object.entries(fields)) {
    const v = numberOf(el);
    if (v !== undefined) body[key] = v;
  }
  return body;
}

// ---- rendering ----
function addMessage(role) {
  els.hint.hidden = true;
  const wrap = document.createElement('div');
  wrap.className = `msg ${role}`;
  // Who said what, for a screen reader: the bubbles tell it apart only by colour and side.
  wrap.setAttribute('role', 'article');
  wrap.setAttribute('aria-label', role === 'user' ? 'You' : 'Answer');
  els.messages.append(wrap);
  return wrap;
}

/** Whether the list shows its end: new text follows only then, so a reader scrolled up stays put. */
function atBottom() {
  const m = els.messages;
  return m.scrollHeight - m.scrollTop - m.clientHeight < 40;
}

function scrollToEnd() {
  els.messages.scrollTop = els.messages.scrollHeight;
}

function addUserMessage(entry) {
  const wrap = addMessage('user');
  const body = document.createElement('div');
  body.className = 'text';
  body.textContent = entry.content;
  const edit = actionButton('Edit', 'Edit message', () => openEditor(wrap, entry.content, (text) => resend(wrap, entry, text), edit), { idleOnly: true });
  wrap.append(body, actionRow(edit));
  scrollToEnd();
  return wrap;
}

/** Copy and Regenerate under a finished answer (the style sheet shows Regenerate on the last one only). */
function addAnswerActions(view, question) {
  const content = view.content;
  const regenerate = actionButton('Regenerate', 'Regenerate answer', () => reanswer(view.element, question), { idleOnly: true, className: 'regenerate' });
  // A stop before the first word leaves nothing to copy.
  const buttons = content ? [copyButton('Copy answer', content), regenerate] : [regenerate];
  view.element.append(actionRow(...buttons));
}

/** Removes el and every message after it. */
function removeFrom(el) {
  while (el.nextElementSibling) el.nextElementSibling.remove();
  el.remove();
}

/**
 * A sent message changed: it and everything after it leave the conversation, and the new text is
 * sent in its place. False (the editor stays open) while an answer streams or a setting is unreadable.
 */
function resend(wrap, entry, text) {
  const at = history.indexOf(entry);
  if (inflight || at < 0 || !settingsReadable()) return false;
  history.splice(at);
  removeFrom(wrap);
  els.prompt.focus();
  void send(text);
  return true;
}

/** The last answer again, for the conversation up to its question and the settings as they are now. */
function reanswer(answerEl, question) {
  const at = history.indexOf(question.entry);
  if (inflight || at < 0 || !settingsReadable()) return;
  history.splice(at + 1);
  removeFrom(answerEl);
  // The button pressed is gone: focus goes where Send would leave it.
  els.prompt.focus();
  void answer(history, question);
}

/**
 * A failed turn sent again as it was, with the settings and API key as they are now (the fix for
 * most failures is made there): the failed pair leaves the list and the question is asked anew.
 * Offered on the last message only, like Regenerate; the copy of the question put back in the box
 * leaves it too, unless it was changed there.
 */
function retry(failedEl, question, conversation) {
  if (inflight || conversation !== history || failedEl !== els.messages.lastElementChild || !settingsReadable()) return;
  const text = question.entry.content;
  removeFrom(question.asked);
  if (els.prompt.value === text) els.prompt.value = '';
  // The button pressed is gone: focus goes where Send would leave it.
  els.prompt.focus();
  void send(text);
}

/** An assistant message: think block (hidden until there is reasoning), answer, and a status line. */
function addAssistantMessage() {
  const wrap = addMessage('assistant');
  const think = document.createElement('details');
  think.className = 'think';
  think.hidden = true;
  const summary = document.createElement('summary');
  summary.textContent = 'Thinking…';
  const thinkText = document.createElement('div');
  thinkText.className = 'think-text';
  think.append(summary, thinkText);
  const answer = document.createElement('div');
  answer.className = 'answer markdown';
  const meta = document.createElement('div');
  meta.className = 'meta';
  wrap.append(think, answer, meta);
  wrap.dataset.state = 'streaming';
  // The question was just sent from the end of the list: the placeholder of its answer is shown
  // too, or the first render would find the list scrolled short of its end and not follow.
  scrollToEnd();
  const markdown = new StreamingMarkdown(md, answer);

  let reasoning = '';
  let content = '';
  let scheduled = false;
  let deferred = false;
  const render = (final = false) => {
    scheduled = false;
    // Blocks of the answer that can no longer change keep their nodes; the growing end is
    // rendered again, which would drop a selection the reader is making there (to copy a part)
    // every frame: while one reaches into it, new text waits.
    if (!final && markdown.restHolds(document.getSelection())) {
      if (!deferred) {
        deferred = true;
        document.addEventListener('selectionchange', function resume() {
          if (markdown.restHolds(document.getSelection())) return;
          document.removeEventListener('selectionchange', resume);
          deferred = false;
          schedule();
        });
      }
      return;
    }
    const follow = atBottom();
    // An empty think block (thinking off, or nothing thought) is not shown.
    if (reasoning.trim()) {
      think.hidden = false;
      thinkText.textContent = reasoning.trim();
    }
    if (final) markdown.finish(content);
    else markdown.render(content);
    if (follow) scrollToEnd();
  };
  const schedule = () => {
    if (!scheduled && !deferred) {
      scheduled = true;
      requestAnimationFrame(() => render());
    }
  };
  return {
    element: wrap,
    addReasoning(text) {
      if (!text) return;
      reasoning += text;
      schedule();
    },
    addContent(text) {
      if (!text) return;
      content += text;
      schedule();
    },
    /** The answer so far was the think block after all: it is shown there instead. */
    dropContent() {
      content = '';
      markdown.reset();
      schedule();
    },
    get content() {
      return content;
    },
    /** Whether there was reasoning to show. */
    get reasoned() {
      return reasoning.trim() !== '';
    },
    // The status line and the error come after the last render: a reader at the end is kept
    // there, so they do not end up below the fold.
    finish(state, note, seconds) {
      const follow = atBottom();
      render(true);
      wrap.dataset.state = state;
      summary.textContent = seconds === undefined ? 'Thought' : `Thought for ${seconds.toFixed(1)} s`;
      // No answer came: the thinking is all there is to read.
      if (!content && reasoning.trim()) think.open = true;
      meta.textContent = note;
      if (follow) scrollToEnd();
    },
    /** actions: buttons shown under the error (Retry). */
    fail(message, actions = []) {
      const follow = atBottom();
      render(true);
      wrap.dataset.state = 'error';
      // An answer cut off mid-stream keeps what came: the thinking is no longer going on, and
      // where no answer came it is all there is to read.
      summary.textContent = 'Thought';
      if (!content && reasoning.trim()) think.open = true;
      const err = document.createElement('div');
      err.className = 'error';
      err.textContent = message;
      wrap.append(err);
      if (actions.length > 0) wrap.append(actionRow(...actions));
      if (follow) scrollToEnd();
    },
  };
}

// ---- one turn ----
function send(text) {
  const entry = { role: 'user', content: text };
  history.push(entry);
  return answer(history, { entry, asked: addUserMessage(entry) });
}

/**
 * Streams the answer to a conversation ending in question.entry (shown as question.asked).
 * New chat may replace `history` while this turn streams: the turn finishes in its own conversation.
 */
async function answer(conversation, question) {
  const { entry, asked } = question;
  const text = entry.content;
  const view = addAssistantMessage();
  const controller = new AbortController();
  inflight = controller;
  setBusy(true);
  const splitter = new ThinkSplitter();
  const begin = performance.now();
  let thoughtSeconds;
  let usage = null;
  let finish = null;
  let sent = null;
  const take = (part) => {
    if (part.contentWasReasoning) {
      // Text shown as the answer ended in `</think>`: it was reasoning (the prompt opened the
      // block), so the answer, and the time it started, are still to come.
      view.dropContent();
      thoughtSeconds = undefined;
    }
    view.addReasoning(part.reasoning);
    if (part.content && thoughtSeconds === undefined) thoughtSeconds = (performance.now() - begin) / 1000;
    view.addContent(part.content);
  };
  try {
    if (!model) model = await loadModels(controller.signal);
    sent = requestBody();
    for await (const chunk of streamChat(sent, { apiKey: els.apiKey.value, signal: controller.signal })) {
      if (chunk.usage) usage = chunk.usage;
      const choice = chunk.choices && chunk.choices[0];
      if (!choice) continue;
      const delta = choice.delta || {};
      // reasoning_content: servers with a reasoning parser; inline <think>: the seed's default.
      if (delta.reasoning_content) view.addReasoning(delta.reasoning_content);
      if (delta.content) take(splitter.push(delta.content));
      if (choice.finish_reason) finish = choice.finish_reason;
    }
    take(splitter.finish());
    const seconds = (performance.now() - begin) / 1000;
    const tokens = usage ? `${usage.completion_tokens} tokens, ${(usage.completion_tokens / seconds).toFixed(1)} tokens/s` : '';
    const cut = finish === 'length' ? cutNote(sent.max_tokens !== undefined, !view.content && view.reasoned) : '';
    view.finish('done', [tokens, cut].filter(Boolean).join(' · '), thoughtSeconds);
    // An answer without text (cut while still thinking) stays out of the conversation, as a
    // stopped one does: Qwen3's template drops the reasoning of every turn before the last
    // question, reasoning_content included, so the model would read an empty assistant turn.
    if (view.content) conversation.push({ role: 'assistant', content: view.content });
    addAnswerActions(view, question);
    if (els.status.dataset.state === 'error') void refreshModel(); // the server is back
  } catch (err) {
    take(splitter.finish());
    if (controller.signal.aborted) {
      // A stopped answer stays in the conversation as far as it got (stopped before a word: the
      // question alone).
      view.finish('stopped', 'stopped', thoughtSeconds);
      if (view.content) conversation.push({ role: 'assistant', content: view.content });
      addAnswerActions(view, question);
    } else {
      // A failed turn leaves the history as it was: the question is marked as not sent, Retry
      // under the error sends it again as it is, and it is put back in the box (when that is
      // empty) to be changed first.
      conversation.pop();
      asked.dataset.state = 'failed';
      // Its text is back in the box: there is nothing left to edit.
      asked.querySelector('.msg-actions')?.remove();
      asked.title = 'not part of the conversation: this turn failed';
      if (!els.prompt.value.trim()) els.prompt.value = text;
      const advice = retryAdvice(err, conversation, sent?.max_tokens);
      const again = actionButton('Retry', 'Retry message', () => retry(view.element, question, conversation), { idleOnly: true, className: 'retry' });
      view.fail(`${failureText(err)} ${advice.text}`, advice.retry ? [again] : []);
      if (err instanceof ApiError && err.status === 401) els.apiKey.focus();
      else void refreshModel();
    }
  } finally {
    inflight = null;
    setBusy(false);
  }
}

/**
 * What cut an answer (finish_reason "length"). One cut while still thinking, before any answer
 * text, also says how to get an answer: more room, or a thinking budget, after which the model
 * answers.
 */
function cutNote(byMaxTokens, thoughtOnly) {
  const by = byMaxTokens ? 'cut at max_tokens' : "cut at the model's length limit";
  if (!thoughtOnly) return by;
  const fix = byMaxTokens ? 'raise max_tokens or set a Thinking budget (Settings), then Regenerate' : 'set a Thinking budget (Settings) and Regenerate, or start a New chat';
  return `${by} while still thinking, before any answer: ${fix}`;
}

/**
 * What to do after a failed turn, and whether Retry (the same conversation again) can help. A
 * context-length error fails the same way on every retry: a prompt that fits but leaves less room
 * than max_tokens asks for needs a lower max_tokens (a new chat would not help); a prompt that
 * does not fit needs earlier turns forgotten or a shorter message, so Retry is not offered.
 * maxTokens: the max_tokens the failed request sent, if any.
 */
function retryAdvice(err, conversation, maxTokens) {
  if (err instanceof ApiError && err.code === 'context_length_exceeded') {
    const room = roomAfterPrompt(err.message);
    if (maxTokens !== undefined && room !== null && room > 0) {
      return { retry: true, text: `max_tokens (Settings) asks for more than the ${room} tokens the context leaves for the answer: lower or clear it and Retry (your message is also back in the box).` };
    }
    if (conversation.length > 0) {
      return { retry: false, text: 'The conversation has grown past what the model can take: start a New chat (your message is back in the box) or send a shorter one.' };
    }
    return { retry: false, text: 'Your message is back in the box: shorten it to send it again.' };
  }
  return { retry: true, text: 'Retry sends it again; your message is also back in the box, to change.' };
}

/**
 * The tokens the model's context leaves after the prompt, read from the server's
 * context-length message ("maximum context length is L tokens ... (P in the prompt, ...");
 * null where the message gives no such numbers.
 */
function roomAfterPrompt(message) {
  const m = /maximum context length is (\d+) tokens.*\((\d+) in the prompt/.exec(message);
  return m ? Number(m[1]) - Number(m[2]) : null;
}

/** An error in words: a server that cannot be reached is said to be that, not "Failed to fetch". */
function failureText(err) {
  if (err instanceof ApiError) return err.message;
  const message = err instanceof Error ? err.message : String(err);
  // fetch's own errors (TypeError: Failed to fetch / network error) mean the connection failed.
  if (err instanceof TypeError) return `The server could not be reached or went away (${message}); is it running? (grpst ps)`;
  return message;
}

function setBusy(busy) {
  // Send and Stop take turns in one place: focus on the one being hidden would fall to the page
  // body, leaving a keyboard user nowhere; it goes to the message box instead.
  const leaving = busy ? els.send : els.stop;
  const refocus = document.activeElement === leaving;
  els.send.hidden = busy;
  els.stop.hidden = !busy;
  document.body.dataset.busy = String(busy);
  setActionsBusy(els.messages, busy);
  // The end of the answer is re-rendered every frame while it streams: a busy live region is read
  // out once it settles, not again on every frame.
  els.messages.setAttribute('aria-busy', String(busy));
  if (refocus) els.prompt.focus();
}

/**
 * The model to send: the served one, or the LoRA adapter picked in the list, which is shown only
 * where the server serves adapters. A pick survives a refresh while the server still lists it.
 */
async function loadModels(signal) {
  const { model: base, adapters } = await fetchModels(els.apiKey.value, signal);
  const picked = els.modelSelect.value;
  const names = [base, ...adapters];
  els.modelSelect.replaceChildren(...names.map((name, i) => new Option(i === 0 ? name : `${name} (LoRA)`, name)));
  els.modelSelect.value = names.includes(picked) ? picked : base;
  els.modelSelect.hidden = adapters.length === 0;
  return els.modelSelect.value;
}

els.modelSelect.addEventListener('change', () => {
  model = els.modelSelect.value;
  els.status.textContent = `model ${model}`;
});

async function refreshModel() {
  try {
    model = await loadModels();
    els.status.textContent = `model ${model}`;
    els.status.dataset.state = 'ok';
  } catch (err) {
    model = null;
    const refused = els.apiKey.value ? 'API key refused (Settings)' : 'API key needed (Settings)';
    els.status.textContent = err instanceof ApiError && err.status === 401 ? refused : err instanceof TypeError ? 'server not reachable' : `server not ready: ${err.message}`;
    els.status.dataset.state = 'error';
  }
}

// ---- wiring ----
loadSettings();
// 'input' as well as 'change': a value typed and followed at once by a reload (no blur, so no
// change event) is still kept.
for (const name of stored) {
  els[name].addEventListener('input', () => saveSetting(name));
  els[name].addEventListener('change', () => saveSetting(name));
}
els.apiKey.addEventListener('change', () => void refreshModel());

els.form.addEventListener('submit', (e) => {
  e.preventDefault();
  // Leading indentation is part of the message (pasted code); trailing blanks are not.
  const text = els.prompt.value.replace(/\s+$/, '');
  if (!text.trim() || inflight || !settingsReadable()) return;
  els.prompt.value = '';
  void send(text);
});
els.prompt.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    els.form.requestSubmit();
  }
});
els.stop.addEventListener('click', () => inflight?.abort());
// Escape stops an answer from anywhere on the page, before an editor or list sees it; with
// nothing streaming it is left alone for the browser and the page's own uses (closing an editor).
document.addEventListener(
  'keydown',
  (e) => {
    if (e.key !== 'Escape' || e.isComposing || !inflight) return;
    e.preventDefault();
    e.stopPropagation();
    inflight.abort();
  },
  { capture: true },
);
handleCodeCopies(els.messages);
els.newChat.addEventListener('click', () => {
  inflight?.abort();
  history = [];
  els.messages.replaceChildren();
  els.hint.hidden = false;
  els.prompt.focus();
});

void refreshModel();
els.prompt.focus();
