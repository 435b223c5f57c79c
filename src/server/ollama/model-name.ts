// Model names as Ollama writes them: "model:tag", the tag "latest" when none is given.

/** The name Ollama's clients list and send: the served id, tagged ":latest" when it has no tag. */
export function ollamaName(id: string): string {
  return id.lastIndexOf(':') > id.lastIndexOf('/') ? id : `${id}:latest`;
}

/** Whether a name a client sends means the served model, with or without Ollama's default tag. */
export function namesServedModel(name: string, servedId: string): boolean {
  return name !== '' && ollamaName(name) === ollamaName(servedId);
}
