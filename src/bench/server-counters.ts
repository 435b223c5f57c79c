// What a grpst server did during a load run, from its /metrics counters read before and after:
// the engine loop's steps and the share of their time in forward passes, and speculative
// decoding's drafts and how many of their tokens were taken. Other servers lack these series; a
// run against them goes on without the figures.
import { request, type Agent } from 'undici';

/** The engine loop's counters (grpst_engine_*_total): steps, their wall time, and the part in forward passes. */
export interface EngineLoopTimes {
  steps: number;
  stepSeconds: number;
  forwardSeconds: number;
}

/** Speculative decoding's counters (grpst_spec_decode_*_total): drafted steps, draft tokens checked, those taken. */
export interface SpecDecodeCounts {
  drafts: number;
  draftTokens: number;
  acceptedTokens: number;
}

export interface ServerCounters {
  loop?: EngineLoopTimes;
  spec?: SpecDecodeCounts;
}

const engineLoopSeries = {
  steps: 'grpst_engine_steps_total',
  stepSeconds: 'grpst_engine_step_seconds_total',
  forwardSeconds: 'grpst_engine_forward_seconds_total',
} as const;

const specSeries = {
  drafts: 'grpst_spec_decode_drafts_total',
  draftTokens: 'grpst_spec_decode_draft_tokens_total',
  acceptedTokens: 'grpst_spec_decode_accepted_tokens_total',
} as const;

/** What the engine loop did between two readings of its counters (/metrics, or EngineStats in process). */
export function engineLoopBetween(before: EngineLoopTimes, after: EngineLoopTimes): EngineLoopTimes {
  return { steps: after.steps - before.steps, stepSeconds: after.stepSeconds - before.stepSeconds, forwardSeconds: after.forwardSeconds - before.forwardSeconds };
}

/** Milliseconds a step spent outside the forward pass: host work between two forward passes. */
export function hostMsPerStep(loop: EngineLoopTimes): number {
  return (1000 * (loop.stepSeconds - loop.forwardSeconds)) / Math.max(1, loop.steps);
}

/** The counters' movement between two readings (each part only where both readings have it). */
export function countersBetween(before: ServerCounters, after: ServerCounters): ServerCounters {
  const out: ServerCounters = {};
  if (before.loop && after.loop) out.loop = engineLoopBetween(before.loop, after.loop);
  if (before.spec && after.spec)
    out.spec = { drafts: after.spec.drafts - before.spec.drafts, draftTokens: after.spec.draftTokens - before.spec.draftTokens, acceptedTokens: after.spec.acceptedTokens - before.spec.acceptedTokens };
  return out;
}

/** The counters now, from the server's /metrics; empty where it has none of them. */
export async function readServerCounters(url: string, agent: Agent, apiKey?: string): Promise<ServerCounters> {
  try {
    const res = await request(`${url}/metrics`, { dispatcher: agent, headers: apiKey ? { authorization: `Bearer ${apiKey}` } : {} });
    const text = await res.body.text();
    if (res.statusCode !== 200) return {};
    const read = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
    const readAll = <K extends string>(series: Record<K, string>) => {
      const values = Object.fromEntries(Object.entries<string>(series).map(([key, name]) => [key, read(name)])) as Record<K, number>;
      return Object.values<number>(values).every(Number.isFinite) ? values : undefined;
    };
    const loop = readAll(engineLoopSeries);
    const spec = readAll(specSeries);
    return { ...(loop ? { loop } : {}), ...(spec ? { spec } : {}) };
  } catch {
    return {}; // a benchmark of a server without /metrics goes on without these figures
  }
}
