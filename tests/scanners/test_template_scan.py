"""Chat-template SSTI analysis: attack shapes are caught, real-world templates stay clean."""

# ruff: noqa: E501 - the benign templates are kept verbatim, long lines included

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from scanners.base import Artifact, ScanContext
from scanners.template_scan import (
    MAX_TEMPLATE_BYTES,
    TemplateScanner,
    analyze_template,
)
from supplychain.core.errors import ArtifactError, LimitExceeded
from supplychain.core.limits import Limits
from supplychain.core.model import ArtifactKind, Finding, Severity
from supplychain.engine import ScanOptions, scan_paths

# --------------------------------------------------------------------------------------------
# Realistic benign templates (shapes copied from the published model repos' tokenizer configs).
# --------------------------------------------------------------------------------------------

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content']"
    " + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

LLAMA2 = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}"
    "{% endif %}{% endfor %}"
)

LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{% endif %}"
)

LLAMA31_TOOLS = """{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{%- if builtin_tools is defined or tools is not none %}
    {{- "Environment: ipython\\n" }}
{%- endif %}
{%- if builtin_tools is defined %}
    {{- "Tools: " + builtin_tools | reject('equalto', 'code_interpreter') | join(", ") + "\\n\\n"}}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary}.' }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- if tools_in_user_message and not tools is none %}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's none!") }}
    {%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\\n\\n' -}}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}
{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {%- if builtin_tools is defined and tool_call.name in builtin_tools %}
            {{- "<|python_tag|>" + tool_call.name + ".call(" }}
            {%- for arg_name, arg_val in tool_call.arguments | items %}
                {{- arg_name + '="' + arg_val + '"' }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- endif %}
            {%- endfor %}
            {{- ")" }}
        {%- else  %}
            {{- '{"name": "' + tool_call.name + '", ' }}
            {{- '"parameters": ' }}
            {{- tool_call.arguments | tojson }}
            {{- "}" }}
        {%- endif %}
        {%- if builtin_tools is defined %}
            {{- "<|eom_id|>" }}
        {%- else %}
            {{- "<|eot_id|>" }}
        {%- endif %}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\\n\\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""

MISTRAL = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}"
    "{% endif %}{% endfor %}"
)

GEMMA = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}"
)

QWEN25 = """{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\\n\\n# Tools\\n\\nYou may call one or more functions.\\n<tools>" }}
    {%- for tool in tools %}
        {{- "\\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\\n</tools>\\n<tool_call>\\n{\\"name\\": <function-name>, \\"arguments\\": <args>}\\n</tool_call><|im_end|>\\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}
    {%- else %}
        {{- '<|im_start|>system\\nYou are Qwen.<|im_end|>\\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\\n<tool_call>\\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\\n<tool_response>\\n' }}
        {{- message.content }}
        {{- '\\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""

PHI3 = (
    "{% for message in messages %}{% if message['role'] == 'system' %}"
    "{{'<|system|>\\n' + message['content'] + '<|end|>\\n'}}{% elif message['role'] == 'user' %}"
    "{{'<|user|>\\n' + message['content'] + '<|end|>\\n'}}{% elif message['role'] == 'assistant' %}"
    "{{'<|assistant|>\\n' + message['content'] + '<|end|>\\n'}}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}"
)

DEEPSEEK_R1 = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='',"
    " is_first_sp=true) %}{%- for message in messages %}{%- if message['role'] == 'system' %}"
    "{%- if ns.is_first_sp %}{% set ns.system_prompt = ns.system_prompt + message['content'] %}"
    "{% set ns.is_first_sp = false %}{%- else %}"
    "{% set ns.system_prompt = ns.system_prompt + '\\n\\n' + message['content'] %}{%- endif %}"
    "{%- endif %}{%- endfor %}{{ bos_token }}{{ ns.system_prompt }}{%- for message in messages %}"
    "{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}"
    "{{'<｜User｜>' + message['content']}}{%- endif %}"
    "{%- if message['role'] == 'assistant' and 'tool_calls' in message %}"
    "{%- set ns.is_tool = false -%}{%- for tool in message['tool_calls'] %}"
    "{%- if not ns.is_first %}{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + "
    "tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\\n' + '```json' + '\\n' + "
    "tool['function']['arguments'] + '\\n' + '```' + '<｜tool▁call▁end｜>'}}"
    "{%- set ns.is_first = true -%}{%- else %}{{'\\n' + '<｜tool▁call▁begin｜>' + tool['type'] + "
    "'<｜tool▁sep｜>' + tool['function']['name'] + '\\n' + '```json' + '\\n' + "
    "tool['function']['arguments'] + '\\n' + '```' + '<｜tool▁call▁end｜>'}}{%- endif %}"
    "{%- endfor %}{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}"
    "{%- if message['role'] == 'assistant' and 'tool_calls' not in message %}"
    "{%- if ns.is_tool %}{{'<｜tool▁outputs▁end｜>' + message['content'] + "
    "'<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%}{%- else %}"
    "{% set content = message['content'] %}{% if '</think>' in content %}"
    "{% set content = content.split('</think>')[-1] %}{% endif %}"
    "{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}"
    "{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}"
    "{%- if ns.is_output_first %}{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + "
    "message['content'] + '<｜tool▁output▁end｜>'}}{%- set ns.is_output_first = false %}"
    "{%- else %}{{'<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}"
    "{%- endif %}{%- endif %}{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}"
    "{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜><think>\\n'}}{% endif %}"
)

HERMES_TOOL_USE = """{%- macro json_to_python_type(json_spec) %}
{%- set basic_type_map = {
    "string": "str",
    "number": "float",
    "integer": "int",
    "boolean": "bool"
} %}
{%- if basic_type_map[json_spec.type] is defined %}
    {{- basic_type_map[json_spec.type] }}
{%- elif json_spec.type == "array" %}
    {{- "list[" +  json_to_python_type(json_spec|items) + "]"}}
{%- elif json_spec.type == "object" %}
    {%- if json_spec.additionalProperties is defined %}
        {{- "dict[str, " + json_to_python_type(json_spec.additionalProperties) + ']'}}
    {%- else %}
        {{- "dict" }}
    {%- endif %}
{%- elif json_spec.type is iterable %}
    {{- "Union[" }}
    {%- for t in json_spec.type %}
      {{- json_to_python_type({"type": t}) }}
      {%- if not loop.last %}
        {{- "," }}
    {%- endif %}
    {%- endfor %}
    {{- "]" }}
{%- else %}
    {{- "Any" }}
{%- endif %}
{%- endmacro %}
{{- bos_token }}
{{- '<|im_start|>system\\n' }}
{{- "You are a function calling AI model. Here are the available tools: <tools> " }}
{%- for tool in tools %}
    {%- if tool.function is defined %}
        {%- set tool = tool.function %}
    {%- endif %}
    {{- '{"type": "function", "function": ' }}
    {{- '{"name": "' + tool.name + '", ' }}
    {{- '"description": "' + tool.name + '(' }}
    {%- for param_name, param_fields in tool.parameters.properties|items %}
        {{- param_name + ": " + json_to_python_type(param_fields) }}
        {%- if not loop.last %}
            {{- ", " }}
        {%- endif %}
    {%- endfor %}
    {{- ")" }}
    {%- if tool.return is defined %}
        {{- " -> " + json_to_python_type(tool.return) }}
    {%- endif %}
    {{- " - " + tool.description + "\\n\\n" }}
    {%- if tool.parameters.properties | length == 0 %}
        {{- "{}" }}
    {%- else %}
        {{- tool.parameters|tojson }}
    {%- endif %}
    {%- if not loop.last %}
        {{- "\\n" }}
    {%- endif %}
{%- endfor %}
{{- " </tools>" }}
{{- 'Use the following pydantic model json schema for each tool call you will make: {"properties": {"name": {"title": "Name", "type": "string"}}, "required": ["name"], "title": "FunctionCall", "type": "object"}\\n' }}
{%- for message in messages %}
    {%- if message.role == "user" or message.role == "system" or (message.role == "assistant" and message.tool_calls is not defined) %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- for tool_call in message.tool_calls %}
            {{- '\\n<tool_call>\\n' }}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '{' }}
            {{- '"name": "' }}
            {{- tool_call.name }}
            {{- '"' }}
            {%- if tool_call.arguments is defined %}
                {{- ', ' }}
                {{- '"arguments": ' }}
                {{- tool_call.arguments|tojson }}
            {%- endif %}
            {{- '}' }}
            {{- '\\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == "tool" %}
        {%- if loop.previtem and loop.previtem.role != "tool" %}
            {{- '<|im_start|>tool\\n' }}
        {%- endif %}
        {{- '<tool_response>\\n' }}
        {{- message.content }}
        {%- if not loop.last %}
            {{- '\\n</tool_response>\\n' }}
        {%- else %}
            {{- '\\n</tool_response>' }}
        {%- endif %}
        {%- if not loop.last and loop.nextitem.role != "tool" %}
            {{- '<|im_end|>' }}
        {%- elif loop.last %}
            {{- '<|im_end|>' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""

SMOL_GENERATION = (
    "{%- for message in messages %}{%- if message.role == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}{% generation %}{{- message.content + '<|im_end|>\\n' }}"
    "{% endgeneration %}{%- else %}{{- '<|im_start|>' + message.role + '\\n' + message.content"
    " + '<|im_end|>\\n' }}{%- endif %}{%- if loop.index > 100 %}{% break %}{% endif %}"
    "{%- endfor %}{%- set pipe = joiner(' | ') %}{%- for i in range(3) %}{{ pipe() }}{{ i }}"
    "{%- endfor %}{{ '{} says {:.2f}'.format('x', 1.5) }}{{ dict(a=1)|tojson }}"
    "{%- set c = cycler('odd', 'even') %}{{ c.next() }}"
)

BENIGN_TEMPLATES = {
    "chatml": CHATML,
    "llama2": LLAMA2,
    "llama3": LLAMA3,
    "llama31_tools": LLAMA31_TOOLS,
    "mistral": MISTRAL,
    "gemma": GEMMA,
    "qwen25": QWEN25,
    "phi3": PHI3,
    "deepseek_r1": DEEPSEEK_R1,
    "hermes_tool_use": HERMES_TOOL_USE,
    "generation_tag_and_helpers": SMOL_GENERATION,
}


@pytest.mark.parametrize("name", sorted(BENIGN_TEMPLATES))
def test_real_world_templates_are_clean(name: str) -> None:
    assert analyze_template(BENIGN_TEMPLATES[name]) == []


# --------------------------------------------------------------------------------------------
# Attack shapes. Each payload below is only ever parsed; none is rendered.
# --------------------------------------------------------------------------------------------

ATTACKS: dict[str, tuple[str, set[str], Severity]] = {
    # CVE-2024-34359 (llama-cpp-python) proof of concept shape.
    # https://github.com/abetlen/llama-cpp-python/security/advisories/GHSA-56xg-wfcc-g829
    "cve_2024_34359_subclasses": (
        "{% for x in ().__class__.__base__.__subclasses__() %}{% if 'warning' in x.__name__ %}"
        "{{ x()._module.__builtins__['__import__']('os').popen('echo hi') }}{% endif %}"
        "{% endfor %}",
        {"TPL001", "TPL002"},
        Severity.CRITICAL,
    ),
    # SGLang CVE-2026-5760 and the 2025 vLLM report: a gadget global's __init__.__globals__
    # reaches os when the server renders the GGUF/tokenizer chat template unsandboxed.
    # https://justappsec.com/news/2026-04-sglang-gguf-ssti-rce
    "cycler_globals_os": (
        "{{ cycler.__init__.__globals__.os.popen('echo hi').read() }}",
        {"TPL001", "TPL002", "TPL004"},
        Severity.CRITICAL,
    ),
    "joiner_globals": (
        "{{ joiner.__init__.__globals__ }}",
        {"TPL001", "TPL004"},
        Severity.CRITICAL,
    ),
    "namespace_globals": (
        "{{ namespace.__init__.__globals__['__builtins__'] }}",
        {"TPL001", "TPL004"},
        Severity.CRITICAL,
    ),
    "lipsum_globals_item": (
        "{{ lipsum.__globals__['os'].popen('echo hi').read() }}",
        {"TPL001", "TPL002", "TPL004"},
        Severity.CRITICAL,
    ),
    "getitem_dunder": ("{{ messages['__class__'] }}", {"TPL001"}, Severity.CRITICAL),
    "attr_filter_dunder": ("{{ x|attr('__class__') }}", {"TPL001"}, Severity.CRITICAL),
    "attr_filter_hex_escape": (
        "{{ x|attr('\\x5f\\x5fclass\\x5f\\x5f') }}",
        {"TPL001"},
        Severity.CRITICAL,
    ),
    "concat_getitem": ("{{ x['__cla' ~ 'ss__'] }}", {"TPL001"}, Severity.CRITICAL),
    "plus_getitem": ("{{ x['__cla' + 'ss__'] }}", {"TPL001"}, Severity.CRITICAL),
    "join_then_attr_via_set": (
        "{% set a = ['__glo', 'bals__']|join %}{{ x|attr(a) }}",
        {"TPL001"},
        Severity.CRITICAL,
    ),
    "underscore_repeat": (
        "{{ x|attr('_' * 2 ~ 'class' ~ '_' * 2) }}",
        {"TPL001"},
        Severity.CRITICAL,
    ),
    "reverse_filter": ("{{ x[('__ssalc__')|reverse] }}", {"TPL001"}, Severity.CRITICAL),
    "set_then_getitem": (
        "{% set k = '__globals__' %}{{ x[k] }}",
        {"TPL001"},
        Severity.CRITICAL,
    ),
    "name_split_over_sets": (
        "{% set a = '__cla' %}{% set a = a ~ 'ss__' %}{{ x[a] }}",
        {"TPL001"},
        Severity.CRITICAL,
    ),
    "set_block_name": (
        "{% set a %}__class__{% endset %}{{ x|attr(a) }}",
        {"TPL001"},
        Severity.CRITICAL,
    ),
    "for_over_literal_names": (
        "{% for a in ['__class__'] %}{{ x|attr(a) }}{% endfor %}",
        {"TPL001"},
        Severity.CRITICAL,
    ),
    "with_binding": (
        "{% with a = '__globals__' %}{{ x[a] }}{% endwith %}",
        {"TPL001"},
        Severity.CRITICAL,
    ),
    "replace_filter_name": (
        "{{ x['XXclassXX'|replace('X', '_')] }}",
        {"TPL001"},
        Severity.CRITICAL,
    ),
    "unresolvable_built_name_via_set": (
        "{% set a = u ~ u ~ 'class' ~ u ~ u %}{{ x[a] }}",
        {"TPL003"},
        Severity.HIGH,
    ),
    "macro_param_attr": (
        "{% macro m(a) %}{{ x|attr(a) }}{% endmacro %}{{ m('__class__') }}",
        {"TPL001", "TPL003"},
        Severity.HIGH,
    ),
    "dynamic_attr_name": ("{{ x|attr(request.args.a) }}", {"TPL003", "TPL004"}, Severity.HIGH),
    "generator_string_chars": (
        "{% set u = ({}|select|string|list)[24] %}{{ x|attr((u, u, 'class', u, u)|join) }}",
        {"TPL003"},
        Severity.HIGH,
    ),
    "percent_c_format": (
        "{{ x|attr('%c%c%s%c%c'|format(95, 95, 'class', 95, 95)) }}",
        {"TPL003"},
        Severity.HIGH,
    ),
    "percent_c_mod_getitem": (
        "{{ x['%c%cclass%c%c' % (95, 95, 95, 95)] }}",
        {"TPL003"},
        Severity.HIGH,
    ),
    "str_format_field": ("{{ '{0.__class__.__mro__}'.format(x) }}", {"TPL001"}, Severity.CRITICAL),
    "str_format_dynamic": ("{{ (a ~ '.x}').format(m) }}", {"TPL003"}, Severity.HIGH),
    "map_attribute": (
        "{{ messages|map(attribute='__class__')|list }}",
        {"TPL001"},
        Severity.CRITICAL,
    ),
    "map_attr_positional": (
        "{{ messages|map('attr', '__init__')|list }}",
        {"TPL001"},
        Severity.CRITICAL,
    ),
    "self_context": (
        "{{ self._TemplateReference__context.cycler }}",
        {"TPL001", "TPL004"},
        Severity.HIGH,
    ),
    "set_gadget": ("{% set c = lipsum %}{{ c }}", {"TPL004"}, Severity.HIGH),
    "config_items": ("{{ config.items() }}", {"TPL004"}, Severity.HIGH),
    "os_name": ("{{ os.popen('echo hi') }}", {"TPL002"}, Severity.CRITICAL),
    "eval_call": ("{{ eval('1') }}", {"TPL002"}, Severity.CRITICAL),
    "import_attr": ("{{ x.import_module('os') }}", {"TPL002"}, Severity.CRITICAL),
    "frame_walk": ("{{ g.gi_frame.f_back.f_globals }}", {"TPL001"}, Severity.CRITICAL),
    "include": ("{% include '/etc/passwd' %}", {"TPL005"}, Severity.MEDIUM),
    "import": ("{% import 'macros.j2' as m %}{{ m.x() }}", {"TPL005"}, Severity.MEDIUM),
    "from_import": ("{% from 'macros.j2' import x %}{{ x() }}", {"TPL005"}, Severity.MEDIUM),
    "extends": ("{% extends 'base.html' %}", {"TPL005"}, Severity.MEDIUM),
    "dunder_keyword": ("{{ dict(__class__=1)|list|first }}", {"TPL001"}, Severity.CRITICAL),
    "nsref_dunder": (
        "{% set ns = namespace() %}{% set ns.__class__ = 1 %}",
        {"TPL001"},
        Severity.CRITICAL,
    ),
    "dunder_string_literal": (
        "{% set names = ['__subclasses__'] %}{{ names }}",
        {"TPL001"},
        Severity.HIGH,
    ),
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_shapes_are_caught(name: str) -> None:
    text, rules, worst = ATTACKS[name]
    issues = analyze_template(text)
    got = {i.rule.id for i in issues}
    assert rules <= got, (name, issues)
    assert max(i.severity or i.rule.severity for i in issues) == worst


def test_attack_hidden_inside_benign_template_is_caught() -> None:
    text = LLAMA31_TOOLS.replace(
        "{{- system_message }}", "{{- system_message }}{{ joiner.__init__.__globals__ }}"
    )
    issues = analyze_template(text)
    assert {"TPL001", "TPL004"} <= {i.rule.id for i in issues}
    assert all(i.line is not None and i.line > 30 for i in issues)


def test_namespace_call_is_benign_but_namespace_object_is_not() -> None:
    assert analyze_template("{% set ns = namespace(found=false) %}{{ ns.found }}") == []
    assert {i.rule.id for i in analyze_template("{{ namespace.x }}")} == {"TPL004"}


def test_local_variable_shadowing_gadget_name_is_benign() -> None:
    assert analyze_template("{% for range in ranges %}{{ range.start }}{% endfor %}") == []


def test_constant_attr_and_benign_computed_key_are_clean() -> None:
    assert analyze_template("{{ m|attr('content') }}{{ d['a' ~ 'b'] }}") == []


def test_state_named_like_modules_is_clean() -> None:
    # ``ns.system`` holding a system prompt, or a tool parameter called "os", is ordinary data;
    # only *calling* system/popen or *using* os as a module is an attack shape.
    text = (
        "{% set ns = namespace(system='', os='') %}{% set ns.system = messages[0].content %}"
        "{{ ns.system }}{{ tool.parameters.os }}{{ message['system'] }}{{ params['eval'] }}"
        "{% do ns.items.remove(x) %}"
    )
    assert analyze_template(text) == []
    assert {i.rule.id for i in analyze_template("{{ ns.system('id') }}")} == {"TPL002"}
    assert {i.rule.id for i in analyze_template("{{ g.os.listdir('/') }}")} == {"TPL002"}
    assert {i.rule.id for i in analyze_template("{{ g['subprocess'].run }}")} == {"TPL002"}


def test_normalised_data_keys_are_clean() -> None:
    text = (
        "{% set role_map = {'user': 'Human', 'assistant': 'AI'} %}"
        "{% for m in messages %}{{ role_map[m.role|lower] }}{{ role_map[m['role'].strip()] }}"
        "{{ role_map[m.role|string|trim] }}{{ m.content.split('</think>')[-1].lstrip('\\n') }}"
        "{% endfor %}"
    )
    assert analyze_template(text) == []
    assert {i.rule.id for i in analyze_template("{{ x[(a ~ b)|lower] }}")} == {"TPL003"}
    assert {i.rule.id for i in analyze_template("{{ x[a.join(b).strip()] }}")} == {"TPL003"}


@pytest.mark.parametrize(
    "text",
    ["{% if %}", "{{ x ", "{% for x in y %}", "{% unknowntag %}", "{{ x|attr( }}"],
)
def test_unparseable_template_is_a_finding(text: str) -> None:
    issues = analyze_template(text)
    assert [i.rule.id for i in issues] == ["TPL006"]


def test_deeply_nested_template_is_a_finding_not_a_crash() -> None:
    text = "{{" + "(" * 20_000 + "1" + ")" * 20_000 + "}}"
    assert [i.rule.id for i in analyze_template(text)] == ["TPL006"]


def test_oversized_template_is_a_finding() -> None:
    text = "x" * (MAX_TEMPLATE_BYTES + 1)
    assert [i.rule.id for i in analyze_template(text)] == ["TPL006"]


# --------------------------------------------------------------------------------------------
# The scanner: files, JSON configs, the engine.
# --------------------------------------------------------------------------------------------


def _scan(
    kind: ArtifactKind, name: str, data: bytes, limits: Limits | None = None
) -> list[Finding]:
    artifact = Artifact(path=name, kind=kind, size=len(data), stream=io.BytesIO(data))
    ctx = ScanContext(limits=limits or Limits())
    return list(TemplateScanner().scan(artifact, ctx))


MALICIOUS = "{{ cycler.__init__.__globals__.os.popen('echo hi').read() }}"


def test_jinja_file() -> None:
    assert _scan(ArtifactKind.CHAT_TEMPLATE, "chat_template.jinja", CHATML.encode()) == []
    got = _scan(ArtifactKind.CHAT_TEMPLATE, "chat_template.jinja", MALICIOUS.encode())
    assert "TPL001" in {f.rule for f in got}
    assert max(f.severity for f in got) == Severity.CRITICAL


def test_chat_template_json_file() -> None:
    clean = json.dumps({"chat_template": GEMMA}).encode()
    assert _scan(ArtifactKind.CHAT_TEMPLATE, "chat_template.json", clean) == []
    bad = json.dumps({"chat_template": MALICIOUS}).encode()
    assert "TPL001" in {
        f.rule for f in _scan(ArtifactKind.CHAT_TEMPLATE, "chat_template.json", bad)
    }


def test_tokenizer_config_string_and_named_list() -> None:
    clean = {
        "chat_template": [
            {"name": "default", "template": CHATML},
            {"name": "tool_use", "template": HERMES_TOOL_USE},
        ],
        "model_max_length": 4096,
    }
    assert (
        _scan(ArtifactKind.MODEL_CONFIG, "tokenizer_config.json", json.dumps(clean).encode()) == []
    )
    bad = {
        "chat_template": [
            {"name": "default", "template": CHATML},
            {"name": "rag", "template": MALICIOUS},
        ]
    }
    got = _scan(ArtifactKind.MODEL_CONFIG, "tokenizer_config.json", json.dumps(bad).encode())
    assert "TPL001" in {f.rule for f in got}
    assert any("rag" in f.message for f in got)


def test_escaped_key_name_is_still_found() -> None:
    raw = b'{"chat\\u005ftemplate": "{{ lipsum.__globals__ }}"}'
    assert "TPL001" in {f.rule for f in _scan(ArtifactKind.MODEL_CONFIG, "x.json", raw)}


def test_duplicate_chat_template_key_analyses_every_copy() -> None:
    raw = (
        '{"chat_template": "{{ lipsum.__globals__ }}", "chat_template": "'
        + CHATML.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        + '"}'
    ).encode()
    rules = {f.rule for f in _scan(ArtifactKind.MODEL_CONFIG, "tokenizer_config.json", raw)}
    assert {"TPL007", "TPL001"} <= rules


def test_config_without_template_is_clean() -> None:
    raw = json.dumps({"architectures": ["LlamaForCausalLM"], "hidden_size": 4096}).encode()
    assert _scan(ArtifactKind.MODEL_CONFIG, "config.json", raw) == []


def test_bad_json_config_with_template_is_tpl006() -> None:
    found = _scan(ArtifactKind.MODEL_CONFIG, "tokenizer_config.json", b'{"chat_template": "x",}')
    assert [f.rule for f in found] == ["TPL006"]
    # Broken configs without a template are the config scanner's business, not ours.
    assert _scan(ArtifactKind.MODEL_CONFIG, "config.json", b'{"hidden": 1,}') == []


def test_bad_chat_template_json_file_is_malformed() -> None:
    with pytest.raises(ArtifactError):
        _scan(ArtifactKind.CHAT_TEMPLATE, "chat_template.json", b'{"chat_template": "x",}')


def test_deep_json_is_a_finding_not_a_crash() -> None:
    raw = b'{"chat_template": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    found = _scan(ArtifactKind.MODEL_CONFIG, "tokenizer_config.json", raw)
    assert [f.rule for f in found] == ["TPL006"]
    with pytest.raises(ArtifactError):
        _scan(ArtifactKind.CHAT_TEMPLATE, "chat_template.json", raw)


def test_config_over_header_cap_is_limit() -> None:
    raw = json.dumps({"chat_template": CHATML, "pad": "x" * 5000}).encode()
    with pytest.raises(LimitExceeded):
        _scan(
            ArtifactKind.MODEL_CONFIG, "tokenizer_config.json", raw, Limits(max_header_bytes=1000)
        )


def test_non_utf8_template_is_malformed() -> None:
    with pytest.raises(ArtifactError):
        _scan(ArtifactKind.CHAT_TEMPLATE, "chat_template.jinja", b"{{ x }}\xff\xfe")


def test_through_engine_sniffed_by_name_and_content(tmp_path: Path) -> None:
    (tmp_path / "chat_template.jinja").write_text(MALICIOUS)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": QWEN25}))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "tokenizer_config.json").write_text(
        json.dumps({"chat_template": "{% include 'x' %}"})
    )
    report = scan_paths([tmp_path], ScanOptions(scanners=(TemplateScanner,)))
    by_path = {}
    for f in report.findings:
        by_path.setdefault(f.location.path, set()).add(f.rule)
    assert "TPL001" in by_path["chat_template.jinja"]
    assert "tokenizer_config.json" not in by_path
    assert by_path["sub/tokenizer_config.json"] == {"TPL005"}


def test_upper_case_marker_strings_are_not_dunders() -> None:
    # torch/_inductor/kernel/templates/triton_mm_grouped.py.jinja: a marker string, found by
    # scanning site-packages; Python's special names are lower case.
    assert analyze_template("{% set nan = '__NOT_A_NUMBER__' %}{{ nan }}") == []
    assert {i.rule.id for i in analyze_template("{{ x|attr('__class__') }}")} >= {"TPL001"}
