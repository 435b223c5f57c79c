// Ollama's model routes: GET /api/tags, POST /api/show, GET /api/ps, GET /api/version, and the
// ones that manage models (pull, push, create, copy, delete), which grpst does not
// offer: each answers with what to do instead.
import { badRequest, type ApiError } from '../errors.js';
import { sendJson } from '../http.js';
import { notOffered } from '../ollama/errors.js';
import { ollamaName } from '../ollama/model-name.js';
import { checkOllamaModel, listEntry, runningEntry, showBody } from '../ollama/models.js';
import { showRequestSchema } from '../ollama/schema.js';
import type { Handler, RequestContext } from '../router.js';
import { parseBody } from './common.js';

export async function ollamaTags(rc: RequestContext): Promise<void> {
  sendJson(rc.res, 200, { models: [listEntry(rc.server)] });
}

export async function ollamaShow(rc: RequestContext): Promise<void> {
  const body = await parseBody(rc, showRequestSchema);
  const model = body.model ?? body.name;
  if (model === null || model === undefined) throw badRequest("Missing required parameter: 'model'.", 'model', 'missing_required_parameter');
  checkOllamaModel(rc.server, model);
  sendJson(rc.res, 200, showBody(rc.server));
}

/** The loaded model; none while the engine loads (or after a failed load). */
export async function ollamaPs(rc: RequestContext): Promise<void> {
  sendJson(rc.res, 200, { models: rc.server.engine ? [runningEntry(rc.server)] : [] });
}

/**
 * The Ollama release whose API these routes follow: the first with every field they take
 * (logprobs came in 0.12.11). Ollama's tools gate features on GET /api/version, and some refuse
 * an older server outright (VS Code's Copilot Chat below 0.6.4), so grpst's own version, far
 * under these, would read as an outdated Ollama. GET /version still gives grpst's.
 */
export const ollamaApiVersion = '0.12.11';

export async function ollamaVersion(rc: RequestContext): Promise<void> {
  sendJson(rc.res, 200, { version: ollamaApiVersion });
}

/** A route that answers only with why it is refused and what to do instead. */
function refused(error: (served: string) => ApiError): Handler {
  return async (rc) => {
    throw error(ollamaName(rc.server.options.modelId));
  };
}

export const ollamaPull = refused((served) =>
  notOffered('Pulling models', `grpst serves the one model it was started with ('${served}'). Build an engine from a Hugging Face checkpoint with \`grpst build\` and serve it with \`grpst start\`.`),
);
export const ollamaPush = refused(() => notOffered('Pushing models', 'copy the engine folder, or pack it with `grpst archive` and start the archive elsewhere with `grpst start`.'));
export const ollamaCreate = refused(() =>
  notOffered('Creating models from a Modelfile', 'build an engine with `grpst build` (its flags choose the quantization) and set sampling defaults and stop words in the inference conf.'),
);
export const ollamaCopy = refused((served) => notOffered('Copying models', `this server serves one model ('${served}'); give it more names with a list in served_model_name in the inference conf.`));
export const ollamaDelete = refused(() => notOffered('Deleting models', 'stop the server with `grpst stop` and remove its engine folder.'));
