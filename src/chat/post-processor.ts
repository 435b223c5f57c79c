// tokenizer.json's post_processor, as Hugging Face applies it when a text is encoded with
// add_special_tokens (its default for `tokenizer(text)`): a TemplateProcessing wraps the ids in
// the special tokens of its `single` template (an embedding model's tokenizer appends its end
// token so that last-token pooling reads it). ByteLevel adds nothing; neither does an absent one.
// Chat prompts never pass through here: the chat template writes every special token itself.
import { badInput } from '../util/errors.js';

type TemplatePiece = { SpecialToken: { id: string } } | { Sequence: { id: string } };

export interface PostProcessorJson {
  type: string;
  single?: TemplatePiece[];
  special_tokens?: Record<string, { id: string; ids: number[] }>;
  processors?: PostProcessorJson[];
}

/** The ids a single sequence becomes: the template's specials around it (identity when none applies). */
export type PostProcess = (ids: number[]) => number[];

export function postProcessorFromJson(json: PostProcessorJson | null | undefined): PostProcess {
  const template = findTemplate(json);
  if (!template) return (ids) => ids;
  const pieces = (template.single ?? []).map((p): number[] | 'A' => {
    if ('Sequence' in p) return 'A';
    const special = template.special_tokens?.[p.SpecialToken.id];
    if (!special || !Array.isArray(special.ids))
      throw badInput(`tokenizer.json: post_processor names the special token ${JSON.stringify(p.SpecialToken.id)} but does not list its ids`, 'copy tokenizer.json again from the checkpoint');
    return special.ids;
  });
  return (ids) => pieces.flatMap((p) => (p === 'A' ? ids : p));
}

function findTemplate(json: PostProcessorJson | null | undefined): PostProcessorJson | undefined {
  if (!json) return undefined;
  if (json.type === 'TemplateProcessing') return json;
  if (json.type === 'Sequence') for (const p of json.processors ?? []) if (p.type === 'TemplateProcessing') return p;
  return undefined;
}
