"""Drives a running grpst server with the OpenAI Agents SDK (`openai-agents`), as agent builders do.

    python client/python/compat_agents.py 127.0.0.1:9997 [--api_key KEY] [--model NAME]

The SDK is pointed at the server with set_default_openai_client, and tracing is off, so nothing
goes to the internet. Each agent check runs through both of the SDK's OpenAI models: the
Responses API (OpenAIResponsesModel, what an agent with a model name gets by default) and Chat
Completions (OpenAIChatCompletionsModel). Checks assert structure, never what the model says: a
forced tool call, a handoff and a typed final output are what the server's constrained decoding
guarantees, so they must parse, validate and run. Exits 0 when every check passed, 1 at the first
failure; stdout is one line of JSON (see compat_common.py).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
from typing import Annotated, Any, Awaitable, Callable, Dict, List, Literal, Optional, TypeVar

import openai
from agents import (
    Agent,
    AgentUpdatedStreamEvent,
    HandoffCallItem,
    HandoffOutputItem,
    ItemHelpers,
    MaxTurnsExceeded,
    MessageOutputItem,
    ModelBehaviorError,
    ModelSettings,
    OpenAIChatCompletionsModel,
    OpenAIProvider,
    OpenAIResponsesModel,
    RawResponsesStreamEvent,
    ReasoningItem,
    RunHooks,
    RunItemStreamEvent,
    Runner,
    ToolCallItem,
    ToolCallOutputItem,
    WebSearchTool,
    function_tool,
    set_default_openai_client,
    set_tracing_disabled,
)
from openai.types.shared import Reasoning
from pydantic import BaseModel, Field

from compat_common import Runner as Checks
from compat_common import CheckFailed, expect, expect_equal, parse_args, post_json

args = parse_args(__doc__.splitlines()[0])
client = openai.AsyncOpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0, timeout=120)
# The SDK's own defaults would reach api.openai.com: its models through this client, its traces
# nowhere.
set_default_openai_client(client, use_for_tracing=False)
set_tracing_disabled(True)
checks = Checks("openai-agents", importlib.metadata.version("openai-agents"), args.root)
# One event loop for the whole run: the client's connection pool belongs to the loop it opened on.
loop = asyncio.new_event_loop()
T = TypeVar("T")
# Facts one check establishes and a later one builds on.
state: Dict[str, Any] = {}


def run_async(fn: Callable[[], Awaitable[T]]) -> Callable[[], T]:
    return lambda: loop.run_until_complete(fn())


def models() -> Dict[str, Any]:
    """The two model classes, keyed by API: a model name resolves to the Responses API by default."""
    return {"responses": state["model"], "chat": OpenAIChatCompletionsModel(state["model"], client)}


# A random-weight model never ends its text by itself, and the SDK fails a Responses run whose
# response is incomplete (cut by max_tokens, as OpenAI reports it). So the agents' turns end
# themselves: min_tokens keeps the end token away for a few tokens, a logit_bias then makes it
# the next one (both vLLM fields the server takes on either API, sent through extra_body). A
# constrained turn (a forced call, a typed output) still ends where its grammar lets it.
END_AFTER = 4


def settings(max_tokens: int, **more: Any) -> ModelSettings:
    """Greedy (the two APIs, one prompt rendered alike, must give the same answer), ending after END_AFTER tokens."""
    extra = {"min_tokens": END_AFTER, "logit_bias": {str(state["end_token"]): 100}, **more.pop("extra_body", {})}
    return ModelSettings(**{"temperature": 0, "max_tokens": max_tokens, **more, "extra_body": extra})


def tool_settings(**more: Any) -> ModelSettings:
    # A function call or a typed output is short; the budget leaves room for its JSON to close.
    more.setdefault("tool_choice", "required")
    return settings(more.pop("max_tokens", 96), **more)


class Person(BaseModel):
    name: str = Field(max_length=20)
    age: int = Field(ge=0, le=120)
    role: Literal["admin", "user", "guest"]


calls: List[Dict[str, Any]] = []


@function_tool
def get_weather(city: Annotated[str, Field(max_length=24)], unit: Literal["celsius", "fahrenheit"]) -> str:
    """Get the current weather in a city.

    Args:
        city: The city, e.g. Boston.
        unit: The temperature unit.
    """
    calls.append({"city": city, "unit": unit})
    return f"Sunny, 21 degrees {unit} in {city}."


def tool_items(result: Any) -> Dict[str, list]:
    items = result.new_items
    return {
        "calls": [i for i in items if isinstance(i, ToolCallItem)],
        "outputs": [i for i in items if isinstance(i, ToolCallOutputItem)],
        "messages": [i for i in items if isinstance(i, MessageOutputItem)],
    }


async def raised(kind: type, what: str, run: Awaitable[Any]) -> Any:
    try:
        await run
    except kind as err:
        return err
    raise CheckFailed(f"{what}: no {kind.__name__} raised")


async def drain(streamed: Any) -> None:
    async for _ in streamed.stream_events():
        pass


async def check_setup() -> Dict[str, Any]:
    listed = [m.id async for m in client.models.list()]
    expect(len(listed) >= 1, "models.list() returned no model")
    model = args.model or listed[0]
    expect(model in listed, f"model {model!r} is not among the served ones {listed}")
    state["model"] = model
    token = lambda text: post_json(f"{args.root}/tokenize", {"model": model, "prompt": text}, args.api_key)["tokens"][0]
    state.update(end_token=token("<|im_end|>"), call_token=token("<tool_call>"))
    # The default provider hands a model name to the Responses API, through the default client;
    # use_responses=False (RunConfig(model_provider=...)) to Chat Completions.
    expect(isinstance(OpenAIProvider().get_model(model), OpenAIResponsesModel), "a model name did not resolve to OpenAIResponsesModel")
    chat = OpenAIProvider(openai_client=client, use_responses=False).get_model(model)
    expect(isinstance(chat, OpenAIChatCompletionsModel), f"use_responses=False gave {type(chat).__name__}")
    return {"model": model}


async def check_run() -> Dict[str, Any]:
    """Runner.run with plain instructions: one turn, the same greedy answer through both APIs."""
    out: Dict[str, Any] = {}
    # The x-request-id of each model call, which the test finds in the server's access log.
    ids: Dict[str, Optional[str]] = {}
    cached: Dict[str, int] = {}
    for api, model in models().items():
        agent = Agent(name="Storyteller", instructions="You tell very short stories.", model=model, model_settings=settings(16))
        r = await Runner.run(agent, "Tell me a story about a robot.")
        expect(isinstance(r.final_output, str) and r.final_output != "", f"{api}: final_output {r.final_output!r}")
        expect_equal(len(r.raw_responses), 1, f"{api}: model calls for one turn")
        usage = r.context_wrapper.usage
        expect_equal(usage.requests, 1, f"{api}: usage.requests")
        expect(0 < usage.output_tokens <= 16, f"{api}: output_tokens {usage.output_tokens} not in 1..16 (max_tokens 16)")
        expect_equal(usage.total_tokens, usage.input_tokens + usage.output_tokens, f"{api}: usage.total_tokens")
        out[api] = {"text": r.final_output, "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}
        ids[api] = r.raw_responses[0].request_id
        cached[api] = usage.input_tokens_details.cached_tokens
    expect_equal(out["chat"], out["responses"], "the chat model's answer and usage against the responses model's")
    # The server reuses the prompt prefix the first run left: the SDK's usage reports it.
    expect(cached["chat"] > 0, f"no cached_tokens for a prompt just run through the other API: {cached}")
    return {"input_tokens": out["responses"]["input_tokens"], "output_tokens": out["responses"]["output_tokens"], "cached_tokens": cached, "request_ids": ids}


async def check_model_settings() -> Dict[str, Any]:
    """ModelSettings reach the server: a seeded sample repeats, logprobs come back, store decides
    whether the response is kept; the Responses API's own settings are accepted."""
    out: Dict[str, Any] = {}
    sampled = settings(12, temperature=0.9, top_p=0.95, frequency_penalty=0.5, presence_penalty=0.3, metadata={"run": "compat"},
                       extra_body={"seed": 11})
    for api, model in models().items():
        agent = Agent(name="Sampler", instructions="Answer briefly.", model=model, model_settings=sampled)
        a = await Runner.run(agent, "Name a colour.")
        b = await Runner.run(agent, "Name a colour.")
        expect_equal(b.final_output, a.final_output, f"{api}: a second answer with the same seed")
        expect(a.context_wrapper.usage.output_tokens <= 12, f"{api}: output_tokens {a.context_wrapper.usage.output_tokens} over max_tokens 12")
        logged = Agent(name="Sampler", model=model, model_settings=settings(16, top_logprobs=2))
        r = await Runner.run(logged, "Tell me a story about a robot.")
        message = [i for i in r.new_items if isinstance(i, MessageOutputItem)][-1].raw_item
        logprobs = message.content[0].logprobs or []
        expect(len(logprobs) > 0, f"{api}: no logprobs with top_logprobs=2")
        expect(all(len(lp.top_logprobs) == 2 for lp in logprobs), f"{api}: top_logprobs per token")
        out[api] = {"sampled": a.final_output, "logprobs": len(logprobs)}
        if api == "responses":
            kept = await client.responses.retrieve(r.last_response_id)
            expect_equal(kept.output_text, r.final_output, "the stored response's output_text")
            unkept = Agent(name="Sampler", model=model, model_settings=settings(16, store=False, truncation="auto", verbosity="low"))
            u = await Runner.run(unkept, "Tell me a story about a robot.")
            await raised(openai.NotFoundError, "a response run with store=False", client.responses.retrieve(u.last_response_id))
    return out


async def check_function_tool() -> Dict[str, Any]:
    """A @function_tool the model must call: it runs with valid arguments, then a final answer follows its result."""
    out: Dict[str, Any] = {}
    for api, model in models().items():
        calls.clear()
        agent = Agent(name="Weather", instructions="Use the tools to answer.", model=model, tools=[get_weather], model_settings=tool_settings())
        r = await Runner.run(agent, "What's the weather in Boston?", max_turns=4)
        items = tool_items(r)
        expect(len(calls) >= 1, f"{api}: the tool never ran")
        expect_equal(len(items["calls"]), len(calls), f"{api}: tool call items against the tool's runs")
        expect_equal([o.output for o in items["outputs"]], [f"Sunny, 21 degrees {c['unit']} in {c['city']}." for c in calls], f"{api}: the tool outputs")
        # The SDK resets tool_choice after a tool ran, so the next turn is the final answer.
        expect(isinstance(r.final_output, str), f"{api}: final_output {r.final_output!r}")
        expect(len(r.raw_responses) >= 2, f"{api}: {len(r.raw_responses)} model call(s): no turn after the tool's result")
        expect(len(items["messages"]) >= 1, f"{api}: no message after the tool's result")
        out[api] = {"calls": list(calls), "turns": len(r.raw_responses)}
    return out


async def check_structured_output() -> Dict[str, Any]:
    """output_type with a pydantic model: the final output validates, with and without a tool call before it."""
    out: Dict[str, Any] = {}
    for api, model in models().items():
        agent = Agent(name="Profiler", instructions="Describe a person.", model=model, output_type=Person,
                      model_settings=settings(128))
        r = await Runner.run(agent, "Describe a person as JSON.")
        expect(isinstance(r.final_output, Person), f"{api}: final_output is {type(r.final_output).__name__}, not Person")
        calls.clear()
        both = agent.clone(tools=[get_weather], model_settings=tool_settings(max_tokens=128))
        t = await Runner.run(both, "Who lives in Boston, and what's the weather there?", max_turns=4)
        expect(len(calls) >= 1, f"{api}: the tool never ran before the typed answer")
        expect(isinstance(t.final_output, Person), f"{api}: final_output after a tool call is {type(t.final_output).__name__}, not Person")
        out[api] = {"person": r.final_output.model_dump(), "after_tool": t.final_output.model_dump()}
    return out


class CallThenAnswer(RunHooks):
    """Favours <tool_call> until a tool has answered, then rules it out, so that each turn's
    choice is known in advance (a random model's own is chance); whether a push can reach a call
    is the server's grammar to say."""

    def __init__(self, bias: Dict[str, int]) -> None:
        self.bias = bias
        bias[str(state["call_token"])] = 100

    async def on_tool_end(self, context: Any, agent: Any, tool: Any, result: Any) -> None:
        self.bias[str(state["call_token"])] = -100


async def check_tools_with_output_type() -> Dict[str, Any]:
    """Tools and an output_type under the default tool_choice ("auto"): the model may call a tool
    and then gives the typed answer, as an agent that looks things up before it reports does."""
    out: Dict[str, Any] = {}
    for api, model in models().items():
        calls.clear()
        agent = Agent(name="Reporter", instructions="Look the weather up, then describe a person.", model=model, tools=[get_weather],
                      output_type=Person, model_settings=settings(128))
        hooks = CallThenAnswer(agent.model_settings.extra_body["logit_bias"])
        r = await Runner.run(agent, "Who lives in Boston, and what's the weather there?", max_turns=4, hooks=hooks)
        expect(len(calls) >= 1, f"{api}: no tool call under tool_choice auto with an output_type (the format held the whole turn)")
        expect(isinstance(r.final_output, Person), f"{api}: final_output after the tool is {type(r.final_output).__name__}, not Person")
        expect_equal(len(r.raw_responses), 2, f"{api}: model calls (the call, then the typed answer)")
        out[api] = {"calls": list(calls), "person": r.final_output.model_dump()}
    return out


async def check_stream() -> Dict[str, Any]:
    """Runner.run_streamed: raw response events, run item events, and text deltas that join to the final output."""
    out: Dict[str, Any] = {}
    for api, model in models().items():
        calls.clear()
        agent = Agent(name="Weather", instructions="Use the tools to answer.", model=model, tools=[get_weather], model_settings=tool_settings())
        streamed = Runner.run_streamed(agent, "What's the weather in Boston?", max_turns=4)
        raw_types: List[str] = []
        item_events: List[str] = []
        deltas: List[str] = []
        async for event in streamed.stream_events():
            if isinstance(event, RawResponsesStreamEvent):
                raw_types.append(event.data.type)
                if event.data.type == "response.output_text.delta":
                    deltas.append(event.data.delta)
            elif isinstance(event, RunItemStreamEvent):
                item_events.append(event.name)
        expect(streamed.is_complete, f"{api}: the stream ended without completing the run")
        expect(len(calls) >= 1, f"{api}: the tool never ran")
        for name in ("tool_called", "tool_output", "message_output_created"):
            expect(name in item_events, f"{api}: no {name} event among {sorted(set(item_events))}")
        expect(item_events.index("tool_called") < item_events.index("tool_output") < item_events.index("message_output_created"),
               f"{api}: run item events out of order: {item_events}")
        expect_equal(raw_types.count("response.created"), len(streamed.raw_responses), f"{api}: response.created events against model calls")
        expect_equal(raw_types.count("response.completed") + raw_types.count("response.incomplete"), len(streamed.raw_responses),
                     f"{api}: terminal events against model calls")
        expect_equal("".join(deltas), streamed.final_output, f"{api}: the text deltas joined")
        # The same greedy run, not streamed, ends with the same answer.
        calls.clear()
        whole = await Runner.run(agent, "What's the weather in Boston?", max_turns=4)
        expect_equal(whole.final_output, streamed.final_output, f"{api}: the streamed run's answer against the same run not streamed")
        out[api] = {"raw_events": len(raw_types), "item_events": item_events}
    return out


async def check_cancel() -> Dict[str, Any]:
    """A streamed run cancelled part way (an agent interrupted by its user) ends at once; the
    server sees the client leave and stops generating (the test reads its access log)."""
    out: Dict[str, Any] = {}
    for api, model in models().items():
        agent = Agent(name="Talker", model=model, model_settings=ModelSettings(temperature=0, max_tokens=600))
        streamed = Runner.run_streamed(agent, "Tell me a long story about a robot.")
        deltas = 0
        async for event in streamed.stream_events():
            if isinstance(event, RawResponsesStreamEvent) and event.data.type == "response.output_text.delta":
                deltas += 1
                if deltas == 3:
                    streamed.cancel()
        expect(streamed.is_complete, f"{api}: the cancelled run is not complete")
        out[api] = {"deltas": deltas}
    return out


async def check_handoff() -> Dict[str, Any]:
    """A triage agent forced to hand off: the SDK's transfer tool is called and the specialist answers."""
    out: Dict[str, Any] = {}
    for api, model in models().items():
        specialist = Agent(name="Specialist", handoff_description="Answers weather questions.", instructions="Answer the question.",
                           model=model, model_settings=settings(16))
        triage = Agent(name="Triage", instructions="Hand the question to the right agent.", model=model, handoffs=[specialist],
                       model_settings=tool_settings(max_tokens=48))
        streamed = Runner.run_streamed(triage, "What's the weather in Boston?", max_turns=3)
        agents_seen = [e.new_agent.name async for e in streamed.stream_events() if isinstance(e, AgentUpdatedStreamEvent)]
        expect_equal(agents_seen, ["Triage", "Specialist"], f"{api}: agent_updated events")
        expect_equal(streamed.last_agent.name, "Specialist", f"{api}: last_agent")
        handoffs = [i for i in streamed.new_items if isinstance(i, HandoffCallItem)]
        expect_equal([h.raw_item.name for h in handoffs], ["transfer_to_specialist"], f"{api}: handoff calls")
        expect(any(isinstance(i, HandoffOutputItem) for i in streamed.new_items), f"{api}: no handoff output item")
        expect(isinstance(streamed.final_output, str), f"{api}: final_output {streamed.final_output!r}")
        out[api] = {"turns": len(streamed.raw_responses)}
    return out


async def check_conversation() -> Dict[str, Any]:
    """A second turn two ways: the first run's to_input_list() resent, and (Responses) chained by previous_response_id."""
    out: Dict[str, Any] = {}
    for api, model in models().items():
        calls.clear()
        agent = Agent(name="Weather", instructions="Use the tools to answer.", model=model, tools=[get_weather], model_settings=tool_settings())
        first = await Runner.run(agent, "What's the weather in Boston?", max_turns=4)
        plain = agent.clone(tools=[], model_settings=settings(16))
        again = await Runner.run(plain, first.to_input_list() + [{"role": "user", "content": "And tomorrow?"}])
        alone = await Runner.run(plain, "And tomorrow?")
        held = again.context_wrapper.usage.input_tokens - alone.context_wrapper.usage.input_tokens
        expect(held > first.context_wrapper.usage.output_tokens, f"{api}: the resent conversation's prompt holds {held} more tokens than the question alone")
        out[api] = {"resent_input_tokens": again.context_wrapper.usage.input_tokens}
        if api == "responses":
            chained = await Runner.run(plain, "And tomorrow?", previous_response_id=first.last_response_id)
            expect_equal(chained.context_wrapper.usage.input_tokens, again.context_wrapper.usage.input_tokens,
                         "the chained turn's prompt against the resent conversation's")
            expect_equal(chained.final_output, again.final_output, "the chained turn's answer against the resent conversation's")
    return out


async def check_reasoning() -> Dict[str, Any]:
    """Reasoning on (Qwen3 thinking): reasoning items come back and are sent back on the tool's turn."""
    out: Dict[str, Any] = {}
    for api, model in models().items():
        calls.clear()
        thinking = tool_settings(max_tokens=160, reasoning=Reasoning(effort="low"), extra_body={"thinking_token_budget": 32})
        agent = Agent(name="Thinker", instructions="Use the tools to answer.", model=model, tools=[get_weather], model_settings=thinking)
        r = await Runner.run(agent, "What's the weather in Boston?", max_turns=4)
        expect(len(calls) >= 1, f"{api}: the tool never ran")
        reasoning = [i for i in r.new_items if isinstance(i, ReasoningItem)]
        # Chat Completions carries the think block in reasoning_content when the server runs a
        # reasoning parser, and inline in the message's content otherwise (its default, as vLLM's).
        inline = [i for i in r.new_items if isinstance(i, MessageOutputItem) and "</think>" in ItemHelpers.text_message_output(i)]
        expect(len(reasoning) >= 1 or (api == "chat" and len(inline) >= 1), f"{api}: no reasoning with reasoning effort low")
        out[api] = {"reasoning_items": len(reasoning), "inline_think": len(inline), "turns": len(r.raw_responses)}
    return out


async def check_errors() -> Dict[str, Any]:
    """Errors surface as the SDK's and openai's exceptions, run or streamed, with the server's codes."""
    out: Dict[str, Any] = {}
    for api, model in models().items():
        lost = Agent(name="Lost", model="no-such-model" if api == "responses" else OpenAIChatCompletionsModel("no-such-model", client))
        codes = [(await raised(openai.NotFoundError, f"{api}: an unknown model", Runner.run(lost, "Hello"))).code,
                 (await raised(openai.NotFoundError, f"{api}: an unknown model, streamed", drain(Runner.run_streamed(lost, "Hello")))).code]
        huge = Agent(name="Huge", model=model, model_settings=settings(10**6))
        codes.append((await raised(openai.BadRequestError, f"{api}: max_tokens past the context", Runner.run(huge, "Hello"))).code)
        if api == "responses":
            # An agent without a model gets the SDK's default name: the 404 names the served model instead.
            unset = await raised(openai.NotFoundError, "an agent without a model", Runner.run(Agent(name="Unset"), "Hello"))
            expect(f"'{state['model']}'" in unset.message, f"the 404 for the default model does not name the served one: {unset.message}")
            hosted = Agent(name="Hosted", model=model, tools=[WebSearchTool()], model_settings=settings(16))
            codes += [unset.code, (await raised(openai.BadRequestError, "a hosted tool", Runner.run(hosted, "Hello"))).code]
        # A turn cut by max_tokens: the Responses API says so (status incomplete), and the SDK
        # fails the run on it; over Chat Completions (finish_reason "length") the cut text is the answer.
        cut = Agent(name="Cut", model=model, model_settings=ModelSettings(temperature=0, max_tokens=8))
        if api == "responses":
            err = await raised(ModelBehaviorError, "a response cut by max_tokens", Runner.run(cut, "Tell me a story about a robot."))
            expect("max_output_tokens" in str(err), f"the cut run's error does not name max_output_tokens: {err}")
        else:
            r = await Runner.run(cut, "Tell me a story about a robot.")
            expect_equal(r.context_wrapper.usage.output_tokens, 8, "chat: output_tokens of a turn cut by max_tokens 8")
        looping = Agent(name="Loop", model=model, tools=[get_weather], model_settings=tool_settings(), reset_tool_choice=False)
        await raised(MaxTurnsExceeded, f"{api}: a forced tool loop", Runner.run(looping, "What's the weather in Boston?", max_turns=2))
        out[api] = codes
    return out


if __name__ == "__main__":
    for name, fn in [
        ("setup", check_setup),
        ("run", check_run),
        ("model_settings", check_model_settings),
        ("function_tool", check_function_tool),
        ("structured_output", check_structured_output),
        ("tools_with_output_type", check_tools_with_output_type),
        ("stream", check_stream),
        ("cancel", check_cancel),
        ("handoff", check_handoff),
        ("conversation", check_conversation),
        ("reasoning", check_reasoning),
        ("errors", check_errors),
    ]:
        checks.check(name, run_async(fn))
    checks.finish()
