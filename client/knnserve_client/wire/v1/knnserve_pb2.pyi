from . import tensor_pb2 as _tensor_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Weighting(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WEIGHTING_UNSPECIFIED: _ClassVar[Weighting]
    WEIGHTING_UNIFORM: _ClassVar[Weighting]
    WEIGHTING_DISTANCE: _ClassVar[Weighting]

class TieBreak(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TIE_BREAK_UNSPECIFIED: _ClassVar[TieBreak]
    TIE_BREAK_NEAREST: _ClassVar[TieBreak]
    TIE_BREAK_LOWEST: _ClassVar[TieBreak]

class Head(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HEAD_UNSPECIFIED: _ClassVar[Head]
    HEAD_KNN: _ClassVar[Head]
    HEAD_LINEAR: _ClassVar[Head]
WEIGHTING_UNSPECIFIED: Weighting
WEIGHTING_UNIFORM: Weighting
WEIGHTING_DISTANCE: Weighting
TIE_BREAK_UNSPECIFIED: TieBreak
TIE_BREAK_NEAREST: TieBreak
TIE_BREAK_LOWEST: TieBreak
HEAD_UNSPECIFIED: Head
HEAD_KNN: Head
HEAD_LINEAR: Head

class ClassifyRequest(_message.Message):
    __slots__ = ("model", "version", "inputs", "heads", "k", "weights", "tie_break", "nprobe", "ef_search", "top_n", "return_neighbors", "tag")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    HEADS_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    TIE_BREAK_FIELD_NUMBER: _ClassVar[int]
    NPROBE_FIELD_NUMBER: _ClassVar[int]
    EF_SEARCH_FIELD_NUMBER: _ClassVar[int]
    TOP_N_FIELD_NUMBER: _ClassVar[int]
    RETURN_NEIGHBORS_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    inputs: _tensor_pb2.Tensor
    heads: _containers.RepeatedScalarFieldContainer[Head]
    k: int
    weights: Weighting
    tie_break: TieBreak
    nprobe: int
    ef_search: int
    top_n: int
    return_neighbors: bool
    tag: str
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., inputs: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ..., heads: _Optional[_Iterable[_Union[Head, str]]] = ..., k: _Optional[int] = ..., weights: _Optional[_Union[Weighting, str]] = ..., tie_break: _Optional[_Union[TieBreak, str]] = ..., nprobe: _Optional[int] = ..., ef_search: _Optional[int] = ..., top_n: _Optional[int] = ..., return_neighbors: _Optional[bool] = ..., tag: _Optional[str] = ...) -> None: ...

class HeadResult(_message.Message):
    __slots__ = ("predictions", "top_classes", "top_scores")
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    TOP_CLASSES_FIELD_NUMBER: _ClassVar[int]
    TOP_SCORES_FIELD_NUMBER: _ClassVar[int]
    predictions: _tensor_pb2.Tensor
    top_classes: _tensor_pb2.Tensor
    top_scores: _tensor_pb2.Tensor
    def __init__(self, predictions: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ..., top_classes: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ..., top_scores: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ...) -> None: ...

class Neighbors(_message.Message):
    __slots__ = ("ids", "distances", "labels")
    IDS_FIELD_NUMBER: _ClassVar[int]
    DISTANCES_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    ids: _tensor_pb2.Tensor
    distances: _tensor_pb2.Tensor
    labels: _tensor_pb2.Tensor
    def __init__(self, ids: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ..., distances: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ..., labels: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ...) -> None: ...

class EffectiveParams(_message.Message):
    __slots__ = ("k", "weights", "tie_break", "nprobe", "ef_search", "top_n")
    K_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    TIE_BREAK_FIELD_NUMBER: _ClassVar[int]
    NPROBE_FIELD_NUMBER: _ClassVar[int]
    EF_SEARCH_FIELD_NUMBER: _ClassVar[int]
    TOP_N_FIELD_NUMBER: _ClassVar[int]
    k: int
    weights: Weighting
    tie_break: TieBreak
    nprobe: int
    ef_search: int
    top_n: int
    def __init__(self, k: _Optional[int] = ..., weights: _Optional[_Union[Weighting, str]] = ..., tie_break: _Optional[_Union[TieBreak, str]] = ..., nprobe: _Optional[int] = ..., ef_search: _Optional[int] = ..., top_n: _Optional[int] = ...) -> None: ...

class ClassifyResponse(_message.Message):
    __slots__ = ("model", "version", "knn", "linear", "neighbors", "params", "tag", "head_classes")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    KNN_FIELD_NUMBER: _ClassVar[int]
    LINEAR_FIELD_NUMBER: _ClassVar[int]
    NEIGHBORS_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    HEAD_CLASSES_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    knn: HeadResult
    linear: HeadResult
    neighbors: Neighbors
    params: EffectiveParams
    tag: str
    head_classes: _containers.RepeatedCompositeFieldContainer[HeadClasses]
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., knn: _Optional[_Union[HeadResult, _Mapping]] = ..., linear: _Optional[_Union[HeadResult, _Mapping]] = ..., neighbors: _Optional[_Union[Neighbors, _Mapping]] = ..., params: _Optional[_Union[EffectiveParams, _Mapping]] = ..., tag: _Optional[str] = ..., head_classes: _Optional[_Iterable[_Union[HeadClasses, _Mapping]]] = ...) -> None: ...

class HeadClasses(_message.Message):
    __slots__ = ("head", "known")
    HEAD_FIELD_NUMBER: _ClassVar[int]
    KNOWN_FIELD_NUMBER: _ClassVar[int]
    head: Head
    known: int
    def __init__(self, head: _Optional[_Union[Head, str]] = ..., known: _Optional[int] = ...) -> None: ...

class AddExamplesRequest(_message.Message):
    __slots__ = ("model", "inputs", "labels", "request_id")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    model: str
    inputs: _tensor_pb2.Tensor
    labels: _containers.RepeatedScalarFieldContainer[str]
    request_id: str
    def __init__(self, model: _Optional[str] = ..., inputs: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ..., labels: _Optional[_Iterable[str]] = ..., request_id: _Optional[str] = ...) -> None: ...

class AddExamplesResponse(_message.Message):
    __slots__ = ("model", "version", "ids", "log_position", "duplicate")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    LOG_POSITION_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    ids: _tensor_pb2.Tensor
    log_position: int
    duplicate: bool
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., ids: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ..., log_position: _Optional[int] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class RemoveExamplesRequest(_message.Message):
    __slots__ = ("model", "ids", "request_id")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    model: str
    ids: _containers.RepeatedScalarFieldContainer[int]
    request_id: str
    def __init__(self, model: _Optional[str] = ..., ids: _Optional[_Iterable[int]] = ..., request_id: _Optional[str] = ...) -> None: ...

class RemoveExamplesResponse(_message.Message):
    __slots__ = ("model", "version", "log_position", "duplicate")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LOG_POSITION_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    log_position: int
    duplicate: bool
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., log_position: _Optional[int] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class SnapshotModelRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class SnapshotModelResponse(_message.Message):
    __slots__ = ("model", "version", "previous_version", "ntotal")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    NTOTAL_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    previous_version: int
    ntotal: int
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., previous_version: _Optional[int] = ..., ntotal: _Optional[int] = ...) -> None: ...

class OnlineState(_message.Message):
    __slots__ = ("writable", "added", "removed", "log_position", "log_bytes", "max_log_bytes", "max_rows_per_add", "head_classes")
    WRITABLE_FIELD_NUMBER: _ClassVar[int]
    ADDED_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    LOG_POSITION_FIELD_NUMBER: _ClassVar[int]
    LOG_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_LOG_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_ROWS_PER_ADD_FIELD_NUMBER: _ClassVar[int]
    HEAD_CLASSES_FIELD_NUMBER: _ClassVar[int]
    writable: bool
    added: int
    removed: int
    log_position: int
    log_bytes: int
    max_log_bytes: int
    max_rows_per_add: int
    head_classes: _containers.RepeatedCompositeFieldContainer[HeadClasses]
    def __init__(self, writable: _Optional[bool] = ..., added: _Optional[int] = ..., removed: _Optional[int] = ..., log_position: _Optional[int] = ..., log_bytes: _Optional[int] = ..., max_log_bytes: _Optional[int] = ..., max_rows_per_add: _Optional[int] = ..., head_classes: _Optional[_Iterable[_Union[HeadClasses, _Mapping]]] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("model", "version", "inputs", "k", "nprobe", "ef_search")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    NPROBE_FIELD_NUMBER: _ClassVar[int]
    EF_SEARCH_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    inputs: _tensor_pb2.Tensor
    k: int
    nprobe: int
    ef_search: int
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., inputs: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ..., k: _Optional[int] = ..., nprobe: _Optional[int] = ..., ef_search: _Optional[int] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("model", "version", "neighbors")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    NEIGHBORS_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    neighbors: Neighbors
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., neighbors: _Optional[_Union[Neighbors, _Mapping]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "limits")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    limits: ServerLimits
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., limits: _Optional[_Union[ServerLimits, _Mapping]] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class GetModelResponse(_message.Message):
    __slots__ = ("model", "limits", "online")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    ONLINE_FIELD_NUMBER: _ClassVar[int]
    model: ModelInfo
    limits: ServerLimits
    online: OnlineState
    def __init__(self, model: _Optional[_Union[ModelInfo, _Mapping]] = ..., limits: _Optional[_Union[ServerLimits, _Mapping]] = ..., online: _Optional[_Union[OnlineState, _Mapping]] = ...) -> None: ...

class ServerLimits(_message.Message):
    __slots__ = ("max_message_bytes", "max_rows_per_request", "max_neighbors_per_request", "max_ef_search")
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_ROWS_PER_REQUEST_FIELD_NUMBER: _ClassVar[int]
    MAX_NEIGHBORS_PER_REQUEST_FIELD_NUMBER: _ClassVar[int]
    MAX_EF_SEARCH_FIELD_NUMBER: _ClassVar[int]
    max_message_bytes: int
    max_rows_per_request: int
    max_neighbors_per_request: int
    max_ef_search: int
    def __init__(self, max_message_bytes: _Optional[int] = ..., max_rows_per_request: _Optional[int] = ..., max_neighbors_per_request: _Optional[int] = ..., max_ef_search: _Optional[int] = ...) -> None: ...

class QueryLimits(_message.Message):
    __slots__ = ("max_k", "max_nprobe", "max_ef_search")
    MAX_K_FIELD_NUMBER: _ClassVar[int]
    MAX_NPROBE_FIELD_NUMBER: _ClassVar[int]
    MAX_EF_SEARCH_FIELD_NUMBER: _ClassVar[int]
    max_k: int
    max_nprobe: int
    max_ef_search: int
    def __init__(self, max_k: _Optional[int] = ..., max_nprobe: _Optional[int] = ..., max_ef_search: _Optional[int] = ...) -> None: ...

class IndexInfo(_message.Message):
    __slots__ = ("spec", "factory", "metric", "kind", "ntotal", "dim", "nlist")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    FACTORY_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NTOTAL_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    NLIST_FIELD_NUMBER: _ClassVar[int]
    spec: str
    factory: str
    metric: str
    kind: str
    ntotal: int
    dim: int
    nlist: int
    def __init__(self, spec: _Optional[str] = ..., factory: _Optional[str] = ..., metric: _Optional[str] = ..., kind: _Optional[str] = ..., ntotal: _Optional[int] = ..., dim: _Optional[int] = ..., nlist: _Optional[int] = ...) -> None: ...

class FeatureSpace(_message.Message):
    __slots__ = ("input", "extractor", "embedding_dim", "preprocessing", "dim")
    INPUT_FIELD_NUMBER: _ClassVar[int]
    EXTRACTOR_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_DIM_FIELD_NUMBER: _ClassVar[int]
    PREPROCESSING_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    input: str
    extractor: str
    embedding_dim: int
    preprocessing: str
    dim: int
    def __init__(self, input: _Optional[str] = ..., extractor: _Optional[str] = ..., embedding_dim: _Optional[int] = ..., preprocessing: _Optional[str] = ..., dim: _Optional[int] = ...) -> None: ...

class ModelDefaults(_message.Message):
    __slots__ = ("k", "weights", "tie_break", "nprobe", "ef_search", "top_n")
    K_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    TIE_BREAK_FIELD_NUMBER: _ClassVar[int]
    NPROBE_FIELD_NUMBER: _ClassVar[int]
    EF_SEARCH_FIELD_NUMBER: _ClassVar[int]
    TOP_N_FIELD_NUMBER: _ClassVar[int]
    k: int
    weights: Weighting
    tie_break: TieBreak
    nprobe: int
    ef_search: int
    top_n: int
    def __init__(self, k: _Optional[int] = ..., weights: _Optional[_Union[Weighting, str]] = ..., tie_break: _Optional[_Union[TieBreak, str]] = ..., nprobe: _Optional[int] = ..., ef_search: _Optional[int] = ..., top_n: _Optional[int] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "version", "versions", "input_dtype", "input_shape", "dim", "class_names", "index", "heads", "defaults", "created_at", "dataset", "limits", "features")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    INPUT_DTYPE_FIELD_NUMBER: _ClassVar[int]
    INPUT_SHAPE_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    HEADS_FIELD_NUMBER: _ClassVar[int]
    DEFAULTS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    versions: _containers.RepeatedScalarFieldContainer[int]
    input_dtype: _tensor_pb2.DType
    input_shape: _containers.RepeatedScalarFieldContainer[int]
    dim: int
    class_names: _containers.RepeatedScalarFieldContainer[str]
    index: IndexInfo
    heads: _containers.RepeatedScalarFieldContainer[Head]
    defaults: ModelDefaults
    created_at: str
    dataset: str
    limits: QueryLimits
    features: FeatureSpace
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ..., versions: _Optional[_Iterable[int]] = ..., input_dtype: _Optional[_Union[_tensor_pb2.DType, str]] = ..., input_shape: _Optional[_Iterable[int]] = ..., dim: _Optional[int] = ..., class_names: _Optional[_Iterable[str]] = ..., index: _Optional[_Union[IndexInfo, _Mapping]] = ..., heads: _Optional[_Iterable[_Union[Head, str]]] = ..., defaults: _Optional[_Union[ModelDefaults, _Mapping]] = ..., created_at: _Optional[str] = ..., dataset: _Optional[str] = ..., limits: _Optional[_Union[QueryLimits, _Mapping]] = ..., features: _Optional[_Union[FeatureSpace, _Mapping]] = ...) -> None: ...
