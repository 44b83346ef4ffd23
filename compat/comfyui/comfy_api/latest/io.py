"""ComfyUI's V3 `io` module, written for Latentgraph: a V3 node is also a V1 node.

`ComfyNode` derives the V1 attributes (INPUT_TYPES, RETURN_TYPES, FUNCTION, ...) from the class's
`define_schema()` through its metaclass, so registering a V3 class needs nothing special, and
dynamic schemas (file-list combos) are re-read like INPUT_TYPES. `execute` (sync or async) is
called with the inputs as keyword arguments, `cls.hidden` carries the hidden values of that call.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ComfyNode", "Custom", "Hidden", "HiddenHolder", "Input", "NodeOutput", "NumberDisplay",
           "Output", "Schema"]


class NumberDisplay(str, enum.Enum):
    number = "number"
    slider = "slider"


class Hidden(str, enum.Enum):
    """Hidden values a node may ask for in `Schema.hidden`."""

    unique_id = "UNIQUE_ID"
    prompt = "PROMPT"
    extra_pnginfo = "EXTRA_PNGINFO"
    dynprompt = "DYNPROMPT"
    auth_token_comfy_org = "AUTH_TOKEN_COMFY_ORG"
    api_key_comfy_org = "API_KEY_COMFY_ORG"


class HiddenHolder:
    """`cls.hidden` during execute: the hidden values asked for; anything else is None."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:
        return None


def _pruned(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


class Input:
    """A V3 input; `v1()` is its INPUT_TYPES entry."""

    io_type = "*"
    _OPTION_NAMES: dict[str, str] = {}  # V3 keyword -> V1 option name

    def __init__(self, id: str, display_name: str | None = None, optional: bool = False,
                 tooltip: str | None = None, lazy: bool | None = None, default: Any = None,
                 socketless: bool | None = None, widget_type: str | None = None,
                 force_input: bool | None = None, extra_dict: dict[str, Any] | None = None,
                 **options: Any) -> None:
        unknown = set(options) - set(self._OPTION_NAMES)
        if unknown:
            raise TypeError(f"{type(self).__qualname__}: unexpected argument(s) {sorted(unknown)}")
        self.id = id
        self.optional = optional
        self.options = _pruned({"display_name": display_name, "tooltip": tooltip, "lazy": lazy,
                                "default": default, "socketless": socketless, "forceInput": force_input,
                                **{self._OPTION_NAMES[k]: _plain(v) for k, v in options.items()},
                                **(extra_dict or {})})
        self.widget_type = widget_type

    def v1_type(self) -> Any:
        return self.widget_type or self.io_type

    def v1(self) -> tuple[Any, dict[str, Any]]:
        return (self.v1_type(), dict(self.options))


class Output:
    io_type = "*"

    def __init__(self, id: str | None = None, display_name: str | None = None, tooltip: str | None = None,
                 is_output_list: bool = False) -> None:
        self.id = id
        self.display_name = display_name
        self.tooltip = tooltip
        self.is_output_list = is_output_list


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def _comfy_type(io_type: str, options: dict[str, str] | None = None, name: str | None = None) -> type:
    """A V3 type class with nested Input and Output classes of `io_type`."""
    input_class = type("Input", (Input,), {"io_type": io_type, "_OPTION_NAMES": options or {}})
    output_class = type("Output", (Output,), {"io_type": io_type})
    return type(name or io_type.title(), (), {"io_type": io_type, "Input": input_class, "Output": output_class})


def Custom(io_type: str) -> type:  # noqa: N802 - ComfyUI's name
    """A type by name: `io.Custom("MY_TYPE").Input("x")`."""
    return _comfy_type(io_type)


_NUMBER = {"min": "min", "max": "max", "step": "step", "display_mode": "display"}
Int = _comfy_type("INT", {**_NUMBER, "control_after_generate": "control_after_generate"}, "Int")
Float = _comfy_type("FLOAT", {**_NUMBER, "round": "round"}, "Float")
String = _comfy_type("STRING", {"multiline": "multiline", "placeholder": "placeholder",
                                "dynamic_prompts": "dynamicPrompts"}, "String")
Boolean = _comfy_type("BOOLEAN", {"label_on": "label_on", "label_off": "label_off"}, "Boolean")


class Combo:
    """A choice among `options` (a list of strings or an Enum)."""

    io_type = "COMBO"

    class Input(Input):
        io_type = "COMBO"
        _OPTION_NAMES = {"control_after_generate": "control_after_generate", "upload": "upload",
                         "image_folder": "image_folder"}

        def __init__(self, id: str, options: Any = None, **kwargs: Any) -> None:
            if isinstance(options, type) and issubclass(options, enum.Enum):
                options = [member.value for member in options]
            self.choices = list(options or [])
            kwargs["default"] = _plain(kwargs.get("default"))
            super().__init__(id, **kwargs)

        def v1_type(self) -> Any:
            return list(self.choices)

    class Output(Output):
        io_type = "COMBO"


Image = _comfy_type("IMAGE", name="Image")
Mask = _comfy_type("MASK", name="Mask")
Latent = _comfy_type("LATENT", name="Latent")
Conditioning = _comfy_type("CONDITIONING", name="Conditioning")
Sampler = _comfy_type("SAMPLER", name="Sampler")
Sigmas = _comfy_type("SIGMAS", name="Sigmas")
Noise = _comfy_type("NOISE", name="Noise")
Guider = _comfy_type("GUIDER", name="Guider")
Clip = _comfy_type("CLIP", name="Clip")
ControlNet = _comfy_type("CONTROL_NET", name="ControlNet")
Vae = _comfy_type("VAE", name="Vae")
Model = _comfy_type("MODEL", name="Model")
ClipVision = _comfy_type("CLIP_VISION", name="ClipVision")
ClipVisionOutput = _comfy_type("CLIP_VISION_OUTPUT", name="ClipVisionOutput")
StyleModel = _comfy_type("STYLE_MODEL", name="StyleModel")
Gligen = _comfy_type("GLIGEN", name="Gligen")
UpscaleModel = _comfy_type("UPSCALE_MODEL", name="UpscaleModel")
Audio = _comfy_type("AUDIO", name="Audio")
Video = _comfy_type("VIDEO", name="Video")
LatentOperation = _comfy_type("LATENT_OPERATION", name="LatentOperation")
TimestepsRange = _comfy_type("TIMESTEPS_RANGE", name="TimestepsRange")
Point = _comfy_type("POINT", name="Point")
FaceAnalysis = _comfy_type("FACE_ANALYSIS", name="FaceAnalysis")
BBOX = _comfy_type("BBOX", name="BBOX")
SEGS = _comfy_type("SEGS", name="SEGS")
AnyType = _comfy_type("*", name="AnyType")


@dataclass
class Schema:
    """A V3 node's definition (the fields Latentgraph's V1 ABI can express)."""

    node_id: str
    display_name: str | None = None
    category: str = "sd"
    inputs: list[Input] = field(default_factory=list)
    outputs: list[Output] = field(default_factory=list)
    hidden: list[Hidden] = field(default_factory=list)
    description: str = ""
    is_input_list: bool = False
    is_output_node: bool = False
    is_deprecated: bool = False
    is_experimental: bool = False
    is_api_node: bool = False
    not_idempotent: bool = False
    enable_expand: bool = False
    search_aliases: list[str] = field(default_factory=list)
    essentials_category: str | None = None


class NodeOutput:
    """What execute returns: output values, optionally `ui` (a dict or a ui.* object)."""

    def __init__(self, *args: Any, ui: Any = None, expand: Any = None, block_execution: str | None = None) -> None:
        if expand is not None:
            raise NotImplementedError("node expansion is not supported by Latentgraph")
        self.args = args
        self.ui = ui
        self.block_execution = block_execution

    @property
    def result(self) -> tuple[Any, ...] | None:
        return self.args or None

    def v1(self) -> Any:
        result = self.args
        if self.block_execution is not None:
            from engine.blocker import ExecutionBlocker

            result = tuple(ExecutionBlocker(self.block_execution) for _ in self.args)
        if self.ui is None:
            return result
        ui = self.ui.as_dict() if hasattr(self.ui, "as_dict") else dict(self.ui)
        return {"ui": ui, "result": result}


def _hidden_name(hidden: Hidden) -> str:
    return hidden.name


class _V1View(type):
    """The V1 class attributes of a V3 node, read from its schema on each access."""

    @property
    def RETURN_TYPES(cls) -> tuple[Any, ...]:  # noqa: N802 - the V1 ABI's names
        return tuple(output.io_type for output in cls.define_schema().outputs)

    @property
    def RETURN_NAMES(cls) -> tuple[str, ...]:  # noqa: N802
        return tuple(output.display_name or output.id or str(output.io_type)
                     for output in cls.define_schema().outputs)

    @property
    def OUTPUT_IS_LIST(cls) -> tuple[bool, ...]:  # noqa: N802
        return tuple(bool(output.is_output_list) for output in cls.define_schema().outputs)

    @property
    def OUTPUT_TOOLTIPS(cls) -> tuple[str | None, ...]:  # noqa: N802
        return tuple(output.tooltip for output in cls.define_schema().outputs)

    @property
    def CATEGORY(cls) -> str:  # noqa: N802
        return cls.define_schema().category

    @property
    def DESCRIPTION(cls) -> str:  # noqa: N802
        return cls.define_schema().description

    @property
    def OUTPUT_NODE(cls) -> bool:  # noqa: N802
        return cls.define_schema().is_output_node

    @property
    def INPUT_IS_LIST(cls) -> bool:  # noqa: N802
        return cls.define_schema().is_input_list

    @property
    def NOT_IDEMPOTENT(cls) -> bool:  # noqa: N802
        return cls.define_schema().not_idempotent

    @property
    def DEPRECATED(cls) -> bool:  # noqa: N802
        return cls.define_schema().is_deprecated

    @property
    def EXPERIMENTAL(cls) -> bool:  # noqa: N802
        return cls.define_schema().is_experimental


class ComfyNode(metaclass=_V1View):
    """Base of V3 nodes: subclasses define `define_schema()` and `execute(**inputs)` classmethods."""

    FUNCTION = "_execute_v1"
    hidden: HiddenHolder = HiddenHolder({})

    @classmethod
    def define_schema(cls) -> Schema:
        raise NotImplementedError(f"{cls.__name__} does not define define_schema()")

    @classmethod
    def execute(cls, **kwargs: Any) -> NodeOutput:
        raise NotImplementedError(f"{cls.__name__} does not define execute()")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:  # noqa: N802 - the V1 ABI's name
        schema = cls.define_schema()
        required: dict[str, Any] = {}
        optional: dict[str, Any] = {}
        for item in schema.inputs:
            (optional if item.optional else required)[item.id] = item.v1()
        types: dict[str, Any] = {"required": required}
        if optional:
            types["optional"] = optional
        if schema.hidden:
            types["hidden"] = {_hidden_name(h): h.value for h in schema.hidden}
        return types

    def _execute_v1(self, **kwargs: Any) -> Any:
        cls = type(self)
        hidden_names = {_hidden_name(h) for h in cls.define_schema().hidden}
        hidden = {name: kwargs.pop(name) for name in list(kwargs) if name in hidden_names}
        call_class = type(cls.__name__, (cls,), {"hidden": HiddenHolder(hidden)})
        result = call_class.execute(**kwargs)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        return result.v1() if isinstance(result, NodeOutput) else result
