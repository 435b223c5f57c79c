// The buttons on messages: Copy (a code block or a whole answer), Regenerate, Retry, Edit with its
// inline editor. Which conversation they act on is app.js's business; this file only builds them,
// copies text and keeps buttons that would change the conversation disabled while an answer streams.

let busy = false;

/**
 * Copies text to the clipboard; resolves to whether it worked. navigator.clipboard exists only in
 * a secure context (https, localhost): a page opened over plain http on another address falls
 * back to selecting the text in an off-screen box and the older execCommand('copy').
 */
export async function copyText(text) {
  if (navigator.clipboard?.writeText) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // Refused (no permission, page not focused): the older way may still work.
    }
  }
  const box = document.createElement('textarea');
  box.className = 'clipboard-proxy';
  box.value = text;
  box.setAttribute('readonly', '');
  box.setAttribute('aria-hidden', 'true');
  box.tabIndex = -1;
  const focused = document.activeElement;
  document.body.append(box);
  box.select();
  let copied = false;
  try {
    copied = document.execCommand('copy');
  } catch {
    copied = false;
  }
  box.remove();
  if (focused instanceof HTMLElement) focused.focus({ preventScroll: true });
  return copied;
}

/** Says on the button that the copy happened (or failed), then puts its label back. */
async function copyWithFeedback(button, text) {
  const copied = await copyText(text);
  const label = button.dataset.label ?? button.textContent;
  const name = button.dataset.name ?? button.getAttribute('aria-label');
  button.dataset.label = label;
  button.dataset.name = name;
  button.textContent = copied ? 'Copied' : 'Copy failed';
  // The name is what a screen reader says, so the feedback goes there too.
  button.setAttribute('aria-label', button.textContent);
  clearTimeout(button.feedbackTimer);
  button.feedbackTimer = setTimeout(() => {
    button.textContent = label;
    button.setAttribute('aria-label', name);
  }, 1500);
}

/**
 * A small button. name: its accessible name (the visible label is shared by many buttons);
 * idleOnly: it changes the conversation, so it is disabled while an answer streams.
 */
export function actionButton(label, name, onClick, { idleOnly = false, className = '' } = {}) {
  const button = document.createElement('button');
  button.type = 'button';
  button.textContent = label;
  button.setAttribute('aria-label', name);
  if (className) button.className = className;
  if (idleOnly) {
    button.dataset.idleOnly = '';
    button.disabled = busy;
  }
  button.addEventListener('click', onClick);
  return button;
}

export function copyButton(name, text) {
  const button = actionButton('Copy', name, () => void copyWithFeedback(button, text));
  return button;
}

export function actionRow(...buttons) {
  const row = document.createElement('div');
  row.className = 'msg-actions';
  row.append(...buttons);
  return row;
}

/** Disables (or enables again) every button that changes the conversation, and those made later. */
export function setActionsBusy(root, isBusy) {
  busy = isBusy;
  for (const button of root.querySelectorAll('button[data-idle-only]')) button.disabled = isBusy;
}

/**
 * Copy buttons in code blocks come with the rendered markdown (markdown-stream.js), which is
 * replaced while it streams: one listener on the message list serves them all. The code is
 * copied as written, without the language label or the line break that ends every block.
 */
export function handleCodeCopies(list) {
  list.addEventListener('click', (e) => {
    const button = e.target instanceof Element ? e.target.closest('button.copy-code') : null;
    const code = button?.closest('.code-block')?.querySelector('pre code');
    if (code) void copyWithFeedback(button, code.textContent.replace(/\n$/, ''));
  });
}

/**
 * Edits a sent message in place: a box with its text under the bubble, Enter or Send hands the new
 * text to onSend (which replaces the message, or returns false to keep the editor open), Escape
 * or Cancel leaves the message as it was and focus on returnFocus.
 */
export function openEditor(wrap, text, onSend, returnFocus) {
  const open = wrap.querySelector('.editor textarea');
  if (open) {
    open.focus();
    return;
  }
  const form = document.createElement('form');
  form.className = 'editor';
  const box = document.createElement('textarea');
  box.value = text;
  box.rows = Math.min(8, text.split('\n').length + 1);
  box.setAttribute('aria-label', 'Edit message');
  const close = () => {
    form.remove();
    wrap.classList.remove('editing');
  };
  const cancel = () => {
    close();
    returnFocus?.focus();
  };
  const send = actionButton('Send', 'Send edited message', () => form.requestSubmit(), { idleOnly: true });
  const buttons = actionRow(send, actionButton('Cancel', 'Cancel editing', cancel));
  form.append(box, buttons);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const edited = box.value.replace(/\s+$/, '');
    if (edited.trim() && onSend(edited) !== false) close();
  });
  box.addEventListener('keydown', (e) => {
    if (e.isComposing) return;
    if (e.key === 'Enter' && !e.shiftKey) {
      e.preventDefault();
      form.requestSubmit();
    } else if (e.key === 'Escape') {
      e.preventDefault();
      cancel();
    }
  });
  wrap.classList.add('editing');
  wrap.append(form);
  box.focus();
  box.setSelectionRange(box.value.length, box.value.length);
}
