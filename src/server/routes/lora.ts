// vLLM's runtime LoRA routes: POST /v1/load_lora_adapter {lora_name, lora_path} and
// /v1/unload_lora_adapter {lora_name}, answered in plain text as vLLM answers them. Off unless the
// conf allows them (allow_runtime_lora_updating, or vLLM's VLLM_ALLOW_RUNTIME_LORA_UPDATING): they
// read any folder the server can see.
import { isAbsolute } from 'node:path';
import { z } from 'zod';
import { ApiError } from '../errors.js';
import { sendText } from '../http.js';
import type { RequestContext } from '../router.js';
import { parseBody } from './common.js';

const loadSchema = z.object({ lora_name: z.string().min(1), lora_path: z.string().min(1), load_inplace: z.boolean().optional() });
const unloadSchema = z.object({ lora_name: z.string().min(1), lora_int_id: z.number().int().optional() });

/** Whether the runtime routes are on: the conf's switch, or vLLM's environment variable. */
export function runtimeLoraUpdating(conf: boolean | undefined, env: NodeJS.ProcessEnv = process.env): boolean {
  if (conf !== undefined) return conf;
  const v = env.VLLM_ALLOW_RUNTIME_LORA_UPDATING?.toLowerCase();
  return v === '1' || v === 'true';
}

function requireUpdating(rc: RequestContext): void {
  if (!runtimeLoraUpdating(rc.server.options.allowRuntimeLoraUpdating))
    throw new ApiError(404, 'Loading and unloading LoRA adapters at run time is off. Set allow_runtime_lora_updating: true in the inference conf (or VLLM_ALLOW_RUNTIME_LORA_UPDATING=True), or list the adapters in lora_modules.', {
      code: 'lora_updating_disabled',
    });
}

export async function loadLoraAdapter(rc: RequestContext): Promise<void> {
  requireUpdating(rc);
  const body = await parseBody(rc, loadSchema);
  const s = rc.server;
  const engine = s.requireGenerator();
  if (!isAbsolute(body.lora_path))
    throw new ApiError(400, `lora_path must be an absolute folder path (got '${body.lora_path}'): the server's working folder is not the client's.`, { param: 'lora_path', code: 'invalid_value' });
  // vLLM's load_inplace replaces an adapter of the same name; without it a taken name is an error.
  // The adapter is read off the event loop: streams keep flowing while it loads.
  await s.loras.add(engine, { name: body.lora_name, path: body.lora_path }, s.options.modelId, { replace: body.load_inplace === true });
  s.log(`LoRA adapter '${body.lora_name}' loaded from ${body.lora_path}`);
  sendText(rc.res, 200, `Success: LoRA adapter '${body.lora_name}' added successfully.`, 'text/plain; charset=utf-8');
}

export async function unloadLoraAdapter(rc: RequestContext): Promise<void> {
  requireUpdating(rc);
  const body = await parseBody(rc, unloadSchema);
  const s = rc.server;
  if (!s.loras.remove(body.lora_name))
    throw new ApiError(404, `The lora adapter '${body.lora_name}' cannot be found.`, { param: 'lora_name', code: 'lora_adapter_not_found' });
  s.log(`LoRA adapter '${body.lora_name}' unloaded`);
  sendText(rc.res, 200, `Success: LoRA adapter '${body.lora_name}' removed successfully.`, 'text/plain; charset=utf-8');
}
