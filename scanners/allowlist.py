"""Which pickle globals ordinary ML artifacts use, and which ones are a loaded gun.

A pickle can only run code through the globals it imports, so the verdict on a pickle is a verdict
on its imports (and on what is called with what). Allowlist first: every import outside
``ALLOW_EXACT``/``ALLOW_MODULES`` is a finding of at least MEDIUM (a denylist alone is
structurally bypassable: picklescan's maintainer says so in mmaitre314/picklescan#66). The
denylist only decides how bad an unknown import is (CRITICAL for process, file, network, import
machinery, code objects, attribute access and the published scanner bypasses).

Rules of this module:

* names are matched after ``pickle_vm.canonical_module`` alias resolution (``posix`` is ``os``,
  ``_operator`` is ``operator``, ``__builtin__`` is ``builtins``…);
* nothing here imports the named modules: the verdict never depends on what is installed;
* a denied module denies every submodule (``asyncio`` covers ``asyncio.unix_events``:
  picklescan CVE-2025-10157) and dotted names are judged component by component, so a re-export
  (``torch.serialization.pickle.loads``) or an attribute walk (``builtins.object.__subclasses__``)
  is not hidden behind an allowed prefix;
* policy additions (``ScanContext.extra_allowed_imports``) silence the MEDIUM "not allowlisted"
  finding only. They never downgrade a denylisted callable: accepting one of those is a
  per-artifact decision for a content-bound suppression, not for a global allowlist entry.

``ALLOWLIST_VERSION`` changes whenever an entry is added or removed, so reports say which list
judged them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from scanners.denylist_derived import DERIVED_DENY
from scanners.pickle_vm import canonical_module
from supplychain.core.model import Severity

ALLOWLIST_VERSION: Final = "2026.2"

# ---------------------------------------------------------------------------------------------
# Allowlist: exact qualified names (after alias resolution).

ALLOW_EXACT: Final[frozenset[str]] = frozenset(
    {
        # --- Python builtins that only construct plain values.
        "builtins.set",
        "builtins.frozenset",
        "builtins.slice",
        "builtins.complex",
        "builtins.bytearray",
        "builtins.bytes",
        "builtins.range",
        "builtins.list",
        "builtins.dict",
        "builtins.tuple",
        "builtins.int",
        "builtins.float",
        "builtins.bool",
        "builtins.str",
        "builtins.object",  # base class argument of copyreg._reconstructor
        "builtins.NotImplemented",
        "builtins.Ellipsis",
        # --- copyreg helpers the pickler itself emits (protocols 0-1 and __reduce_ex__).
        "copyreg._reconstructor",
        "copyreg.__newobj__",
        "copyreg.__newobj_ex__",
        # --- py2-compatible bytes (protocol 2 pickles bytes as codecs.encode(str, 'latin1')).
        # The scanner additionally checks that both arguments are string constants.
        "codecs.encode",
        # --- collections and small stdlib value types.
        "collections.OrderedDict",
        "collections.defaultdict",  # its factory argument is judged as its own import
        "collections.deque",
        "collections.Counter",
        "collections.ChainMap",
        "collections.namedtuple",  # only builds a class; fields are strings
        "argparse.Namespace",
        "datetime.datetime",
        "datetime.date",
        "datetime.time",
        "datetime.timedelta",
        "datetime.timezone",
        "zoneinfo.ZoneInfo",
        # ``ZoneInfo.__reduce__`` (tz-aware datetimes, pandas time zones): a cache lookup of a
        # validated IANA key (``ZoneInfo`` rejects absolute and ``..`` keys).
        "zoneinfo.ZoneInfo._unpickle",
        "zoneinfo._common._load_tzdata",
        # dateutil time zones: fixed-offset value objects, and the tzfile rebuilder that parses
        # the tz data carried in the pickle itself (``_tzfile._unpickle(cls, key, name, data)``;
        # ``cls`` is judged as its own import). ``tzfile`` itself is rebuild-only below.
        "dateutil.tz.tz.tzutc",
        "dateutil.tz.tz.tzoffset",
        "dateutil.tz._tzfile._unpickle",
        # pytz: ``_p`` is ``pytz.tzinfo.unpickler`` (looks the zone up in ``all_timezones_set``
        # before reading its data), ``_UTC`` returns the UTC singleton.
        "pytz._p",
        "pytz._UTC",
        # array.array: ``_array_reconstructor(array, typecode, mformat, bytes)`` rebuilds values.
        "array.array",
        "array._array_reconstructor",
        # random.Random: seeded from the state the pickle carries (``__reduce__`` is (cls, ())).
        "random.Random",
        # ipaddress value types (constructors parse a string or an int).
        "ipaddress.IPv4Address",
        "ipaddress.IPv6Address",
        "ipaddress.IPv4Network",
        "ipaddress.IPv6Network",
        "ipaddress.IPv4Interface",
        "ipaddress.IPv6Interface",
        "decimal.Decimal",
        "fractions.Fraction",
        # NOTE: only the UUID class: the uuid module also holds ``_get_command_stdout``, a
        # subprocess gadget (picklescan GHSA-g38g-8gr9-h9xp).
        "uuid.UUID",
        "uuid.SafeUUID",
        "enum.Enum",
        "re._compile",
        "re.compile",  # regex compilation, no I/O; catastrophic patterns only burn CPU on use
        "types.SimpleNamespace",
        "functools._lru_cache_wrapper",
        # Path constructors only (Lightning hparams hold paths); every method of pathlib
        # (read_text, unlink…) needs a dotted name or getattr, and both are denied.
        "pathlib.Path",
        "pathlib.PosixPath",
        "pathlib.WindowsPath",
        "pathlib.PurePath",
        "pathlib.PurePosixPath",
        "pathlib.PureWindowsPath",
        # --- NumPy arrays, dtypes, scalars, random generators, masked arrays, matrices.
        "numpy.core.multiarray._reconstruct",
        # NumPy < 1.0 ndarray pickles: ``ndarray.__new__(subtype, shape, dtype)`` (kept by NumPy
        # for them; numpy/lib/tests/data/py2-np0-objarr.npy).
        "numpy.core._internal._reconstruct",
        "numpy.core.multiarray.scalar",
        "numpy.core.numeric._frombuffer",
        "numpy.ndarray",
        "numpy.dtype",
        "numpy.matrix",
        "numpy.matrixlib.defmatrix.matrix",
        "numpy.ma.core._mareconstruct",
        "numpy.ma.core.MaskedArray",
        "numpy.ma.MaskedArray",
        "numpy.core.records.recarray",
        "numpy.rec.recarray",
        "numpy.random._pickle.__bit_generator_ctor",
        "numpy.random._pickle.__generator_ctor",
        "numpy.random._pickle.__randomstate_ctor",
        "numpy.random._mt19937.MT19937",
        "numpy.random._pcg64.PCG64",
        "numpy.random._pcg64.PCG64DXSM",
        "numpy.random._philox.Philox",
        "numpy.random._sfc64.SFC64",
        "numpy.random._generator.Generator",
        "numpy.random.mtrand.RandomState",
        "numpy.random.bit_generator.SeedSequence",
        "numpy.random.bit_generator.__pyx_unpickle_SeedSequence",
        # NumPy < 1.17 pickled RandomState as ``__RandomState_ctor()`` (``RandomState(seed=0)``;
        # the state follows in BUILD): found in every old gensim model.
        "numpy.random.__RandomState_ctor",
        "numpy.random.mtrand.__RandomState_ctor",
        # gensim's native ``save()`` pickles its model objects: plain classes with no
        # ``__setstate__``/``__reduce__`` (NEWOBJ + BUILD only fills ``__dict__``); arrays kept
        # beside them are separate ``.npy`` files. ``call_on_class_only`` only raises
        # AttributeError (it replaces ``load`` on instances); ``hash`` is a pure builtin.
        "gensim.models.word2vec.Word2Vec",
        "gensim.models.keyedvectors.KeyedVectors",
        "gensim.models.fasttext.FastText",
        "gensim.models.fasttext.FastTextKeyedVectors",
        "gensim.models.doc2vec.Doc2Vec",
        "gensim.corpora.dictionary.Dictionary",
        "gensim.utils.call_on_class_only",
        "builtins.hash",
        *(
            f"numpy.{t}"
            for t in [
                "bool_",
                "bool",
                "int8",
                "int16",
                "int32",
                "int64",
                "uint8",
                "uint16",
                "uint32",
                "uint64",
                "intc",
                "uintc",
                "intp",
                "uintp",
                "int_",
                "uint",
                "longlong",
                "ulonglong",
                "short",
                "ushort",
                "byte",
                "ubyte",
                "float16",
                "float32",
                "float64",
                "float128",
                "longdouble",
                "half",
                "single",
                "double",
                "complex64",
                "complex128",
                "complex256",
                "clongdouble",
                "str_",
                "bytes_",
                "void",
                "object_",
                "datetime64",
                "timedelta64",
                "number",
                "integer",
                "floating",
                "generic",
            ]
        ),
        *(
            f"numpy.dtypes.{t}DType"
            for t in [
                "Bool",
                "Int8",
                "Int16",
                "Int32",
                "Int64",
                "UInt8",
                "UInt16",
                "UInt32",
                "UInt64",
                "Float16",
                "Float32",
                "Float64",
                "LongDouble",
                "Complex64",
                "Complex128",
                "CLongDouble",
                "Str",
                "Bytes",
                "Void",
                "Object",
                "DateTime64",
                "TimeDelta64",
                "String",
                "Byte",
                "UByte",
                "Short",
                "UShort",
                "Int",
                "UInt",
                "Long",
                "ULong",
                "LongLong",
                "ULongLong",
                "Half",
                "Float",
                "Double",
            ]
        ),
        # --- NumPy ufuncs (``FunctionTransformer(np.log1p)``, ``np.frompyfunc``-free pipelines):
        # element-wise arithmetic implemented in C; calling one computes on arrays, no I/O,
        # no imports. Listed from ``numpy`` 2.4 (``isinstance(x, np.ufunc)``).
        *(
            f"numpy.{u}"
            for u in [
                "abs",
                "absolute",
                "acos",
                "acosh",
                "add",
                "arccos",
                "arccosh",
                "arcsin",
                "arcsinh",
                "arctan",
                "arctan2",
                "arctanh",
                "asin",
                "asinh",
                "atan",
                "atan2",
                "atanh",
                "bitwise_and",
                "bitwise_count",
                "bitwise_invert",
                "bitwise_left_shift",
                "bitwise_not",
                "bitwise_or",
                "bitwise_right_shift",
                "bitwise_xor",
                "cbrt",
                "ceil",
                "conj",
                "conjugate",
                "copysign",
                "cos",
                "cosh",
                "deg2rad",
                "degrees",
                "divide",
                "divmod",
                "equal",
                "exp",
                "exp2",
                "expm1",
                "fabs",
                "float_power",
                "floor",
                "floor_divide",
                "fmax",
                "fmin",
                "fmod",
                "frexp",
                "gcd",
                "greater",
                "greater_equal",
                "heaviside",
                "hypot",
                "invert",
                "isfinite",
                "isinf",
                "isnan",
                "isnat",
                "lcm",
                "ldexp",
                "left_shift",
                "less",
                "less_equal",
                "log",
                "log10",
                "log1p",
                "log2",
                "logaddexp",
                "logaddexp2",
                "logical_and",
                "logical_not",
                "logical_or",
                "logical_xor",
                "matmul",
                "matvec",
                "maximum",
                "minimum",
                "mod",
                "modf",
                "multiply",
                "negative",
                "nextafter",
                "not_equal",
                "positive",
                "pow",
                "power",
                "rad2deg",
                "radians",
                "reciprocal",
                "remainder",
                "right_shift",
                "rint",
                "sign",
                "signbit",
                "sin",
                "sinh",
                "spacing",
                "sqrt",
                "square",
                "subtract",
                "tan",
                "tanh",
                "true_divide",
                "trunc",
                "vecdot",
                "vecmat",
            ]
        ),
        # ``numpy.core._ufunc_reconstruct(module, name)`` is how older NumPy pickles a ufunc. It
        # imports ``module`` by name, so the scanner resolves it and judges ``module.name``
        # instead (a non-constant argument is a finding of its own).
        "numpy.core._ufunc_reconstruct",
        # --- Callable wrappers judged by what they wrap (``scanners.pickle_scan`` follows the
        # wrapped callable through arguments and BUILD state; see ``WRAPPERS``/``CALLERS``).
        # ``partial(nn.LayerNorm, eps=1e-6)`` in a saved module, gensim's TF-IDF weighting
        # functions: the partial itself runs nothing, the callable it binds is judged.
        "functools.partial",
        "functools.partialmethod",
        # ``reduce(f, items)`` calls ``f`` at load time: judged as a call of ``f``.
        "functools.reduce",
        # ``itemgetter(k)(obj)`` is ``obj[k]``: subscription only, no attribute walk (unlike
        # ``attrgetter``/``methodcaller``, which stay denied with the rest of ``operator``).
        "operator.itemgetter",
        # Arithmetic and comparison functions (``reduce(operator.mul, shape)``, partials of
        # them in configs): they apply an operator to their arguments, nothing else. The rest of
        # ``operator`` (attrgetter, methodcaller, call, setitem…) stays denied.
        *(
            f"operator.{f}"
            for f in [
                "add",
                "sub",
                "mul",
                "truediv",
                "floordiv",
                "mod",
                "pow",
                "neg",
                "pos",
                "abs",
                "eq",
                "ne",
                "lt",
                "le",
                "gt",
                "ge",
                "and_",
                "or_",
                "xor",
                "not_",
                "truth",
                "getitem",
                "matmul",
                "concat",
                "index",
            ]
        ),
        # ``Logger.__reduce__`` is ``(logging.getLogger, (name,))``: a registry lookup that
        # creates no handler and no file (models that keep ``self.logger``).
        "logging.getLogger",
        # --- Hugging Face Trainer: every run writes ``training_args.bin`` (``torch.save`` of
        # ``TrainingArguments``). Enums are rebuilt by calling the class with the value (a
        # lookup); ``AcceleratorConfig`` is a plain dataclass without ``__post_init__``.
        "transformers.trainer_pt_utils.AcceleratorConfig",
        "transformers.debug_utils.DebugOption",
        "transformers.utils.generic.ExplicitEnum",
        "transformers.utils.generic.PaddingStrategy",
        "transformers.utils.generic.TensorType",
        # accelerate enums referenced by ``TrainingArguments`` (distributed type, precision,
        # dynamo backend…): ``str``/``Enum`` subclasses without custom constructors.
        *(
            f"accelerate.utils.dataclasses.{e}"
            for e in [
                "DistributedType",
                "SageMakerDistributedType",
                "DDPCommunicationHookType",
                "FP8BackendType",
                "ComputeEnvironment",
                "DynamoBackend",
                "LoggerType",
                "PrecisionType",
                "RNGType",
                "CustomDtype",
            ]
        ),
        # --- joblib: the wrappers its own pickler writes (raw array bytes follow inline).
        "joblib.numpy_pickle.NumpyArrayWrapper",
        # Legacy (joblib < 0.10) wrappers point at sibling .npy files; those are scanned as
        # files of their own.
        "joblib.numpy_pickle_compat.NDArrayWrapper",
        "joblib.numpy_pickle_compat.ZNDArrayWrapper",
        "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper",
        "sklearn.externals.joblib.numpy_pickle_compat.NDArrayWrapper",
        # --- PyTorch tensors, storages, parameters, dtypes (what weights_only=True allows).
        # --- TorchScript archives: the list/tag helpers the TorchScript unpickler resolves
        # (torch/jit/_pickle.py: identity functions over plain data). ``torch.jit`` itself
        # stays denied (``torch.jit.load`` loads archives).
        "torch.jit._pickle.build_intlist",
        "torch.jit._pickle.build_tensorlist",
        "torch.jit._pickle.build_doublelist",
        "torch.jit._pickle.build_boollist",
        "torch.jit._pickle.build_tensor_from_id",
        "torch.jit._pickle.restore_type_tag",
        "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_tensor_v3",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
        "torch._utils._rebuild_sparse_tensor",
        "torch._utils._rebuild_sparse_csr_tensor",
        "torch._utils._rebuild_device_tensor_from_numpy",
        "torch._utils._rebuild_device_tensor_from_cpu_tensor",
        "torch._utils._rebuild_meta_tensor_no_storage",
        "torch._utils._rebuild_wrapper_subclass",
        "torch._utils._rebuild_nested_tensor",
        "torch._utils._rebuild_qtensor",
        "torch._utils._rebuild_xla_tensor",
        "torch._tensor._rebuild_from_type",
        "torch._tensor._rebuild_from_type_v2",
        "torch.Tensor",
        "torch.Size",
        "torch.device",
        "torch.nn.parameter.Parameter",
        "torch.nn.parameter.Buffer",
        "torch.serialization._get_layout",
        "torch.storage.TypedStorage",
        "torch.storage.UntypedStorage",
        "torch.UntypedStorage",
        "torch.TypedStorage",
        "torch.storage._load_from_bytes",  # calls torch.load on its argument: nested, see scanner
        *(
            f"torch.{t}Storage"
            for t in [
                "Float",
                "Double",
                "Half",
                "BFloat16",
                "Long",
                "Int",
                "Short",
                "Char",
                "Byte",
                "Bool",
                "ComplexFloat",
                "ComplexDouble",
                "QInt8",
                "QUInt8",
                "QInt32",
                "QUInt4x2",
                "QUInt2x4",
            ]
        ),
        *(
            f"torch.{t}"
            for t in [
                "float32",
                "float",
                "float64",
                "double",
                "float16",
                "half",
                "bfloat16",
                "int8",
                "int16",
                "short",
                "int32",
                "int",
                "int64",
                "long",
                "uint8",
                "uint16",
                "uint32",
                "uint64",
                "bool",
                "complex32",
                "complex64",
                "complex128",
                "cfloat",
                "cdouble",
                "chalf",
                "qint8",
                "quint8",
                "qint32",
                "quint4x2",
                "quint2x4",
                "float8_e4m3fn",
                "float8_e5m2",
                "float8_e4m3fnuz",
                "float8_e5m2fnuz",
                "strided",
                "sparse_coo",
                "sparse_csr",
                "sparse_csc",
                "sparse_bsr",
                "sparse_bsc",
                "_mkldnn",
                "per_tensor_affine",
                "per_channel_affine",
                "per_tensor_symmetric",
                "per_channel_symmetric",
                "per_channel_affine_float_qparams",
                "contiguous_format",
                "channels_last",
                "channels_last_3d",
                "preserve_format",
            ]
        ),
        # --- Lightning checkpoint helpers.
        "pytorch_lightning.utilities.parsing.AttributeDict",
        "lightning.pytorch.utilities.parsing.AttributeDict",
        "lightning.fabric.utilities.data.AttributeDict",
        "lightning_fabric.utilities.data.AttributeDict",
        "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint",
        "lightning.pytorch.callbacks.model_checkpoint.ModelCheckpoint",
        "pytorch_lightning.callbacks.early_stopping.EarlyStopping",
        "lightning.pytorch.callbacks.early_stopping.EarlyStopping",
        "omegaconf.dictconfig.DictConfig",
        "omegaconf.listconfig.ListConfig",
        "omegaconf.base.ContainerMetadata",
        "omegaconf.base.Metadata",
        "omegaconf.nodes.AnyNode",
        "omegaconf.nodes.ValueNode",
        "typing.Any",
        # --- pandas: top-level re-exports of value classes (pandas >= 2 pickles use them).
        *(
            f"pandas.{t}"
            for t in [
                "DataFrame",
                "Series",
                "Index",
                "RangeIndex",
                "DatetimeIndex",
                "TimedeltaIndex",
                "PeriodIndex",
                "CategoricalIndex",
                "IntervalIndex",
                "MultiIndex",
                "Categorical",
                "CategoricalDtype",
                "StringDtype",
                "Timestamp",
                "Timedelta",
                "Period",
                "Interval",
                "DatetimeTZDtype",
                "PeriodDtype",
                "IntervalDtype",
                "SparseDtype",
                "ArrowDtype",
                "BooleanDtype",
                "Int8Dtype",
                "Int16Dtype",
                "Int32Dtype",
                "Int64Dtype",
                "UInt8Dtype",
                "UInt16Dtype",
                "UInt32Dtype",
                "UInt64Dtype",
                "Float32Dtype",
                "Float64Dtype",
                "NA",
                "NaT",
                "Flags",
            ]
        ),
        # --- pyarrow pieces of Arrow-backed pandas columns (pandas 3 string columns).
        "pyarrow.lib._restore_array",
        "pyarrow.lib.py_buffer",
        "pyarrow.lib.type_for_alias",
        "pyarrow.lib.schema",
        "pyarrow.lib.field",
        "pyarrow.lib.table",
        "pyarrow.lib.Table",
        "pyarrow.lib.RecordBatch",
        "pyarrow.lib.ChunkedArray",
        "pyarrow.lib.chunked_array",
        "pyarrow.lib._reconstruct_table",
        "pyarrow.lib.Schema",
        "pyarrow.lib.Field",
        "pyarrow.lib.DataType",
        "pyarrow.lib.list_",
        "pyarrow.lib.large_list",
        "pyarrow.lib.struct",
        "pyarrow.lib.dictionary",
        "pyarrow.lib.timestamp",
        "pyarrow.lib.decimal128",
        # --- scipy frozen distributions (sklearn search spaces, fitted priors).
        "scipy.stats._distn_infrastructure.rv_continuous_frozen",
        "scipy.stats._distn_infrastructure.rv_discrete_frozen",
        "scipy.stats._distn_infrastructure.rv_frozen",
    }
)

ALLOW_MODULES: Final[tuple[str, ...]] = (
    # Whole namespaces, for un-dotted names only (``module`` + one attribute). Decision for
    # scikit-learn: estimators live under hundreds of private, release-specific submodules
    # (modelaudit #422/#590: exact lists gave a 100% false-positive rate), and sklearn code
    # reachable by a call does no process, network or import work except the dataset
    # fetchers/loaders and test helpers denied below; tree ensembles produce hundreds of
    # REDUCEs on ``sklearn.tree._tree.Tree`` and Cython ``__pyx_unpickle_*`` helpers.
    "sklearn",
    "scipy.sparse",
    "scipy.stats._continuous_distns",
    "scipy.stats._discrete_distns",
    "pandas.core",
    "pandas._libs",
    "pandas.arrays",
    "torch.nn.modules",
    # TorchScript class types (``__torch__.<qualname>``): resolved against the compiled classes
    # in the archive's ``code/`` (which the code scanner reads), never imported from Python.
    "__torch__",
    "torch.optim",
    "xgboost.core",
    "xgboost.sklearn",
    "lightgbm.basic",
    "lightgbm.sklearn",
    "catboost.core",
    "transformers.configuration_utils",
    "transformers.models",
    "transformers.tokenization_utils_base",
    "transformers.training_args",
    "transformers.trainer_utils",
    "tokenizers",
    "sentence_transformers.models",
)

# ---------------------------------------------------------------------------------------------
# Denylist: a match makes an import CRITICAL. Entries are qualified names; an entry denies itself
# and everything below it (``os`` denies ``os.system`` and ``os.path.join``).

_HAND_DENY: Final[frozenset[str]] = frozenset(
    {
        # Process and shell.
        "os",
        "subprocess",
        "pty",
        "commands",
        "popen2",
        "multiprocessing",
        "concurrent.futures.process",
        "asyncio",  # asyncio.unix_events / base_subprocess (picklescan CVE-2025-10157)
        "signal",
        "threading",
        "sched",
        "_xxsubinterpreters",
        "_posixshmem",
        # Files and archives.
        "shutil",
        "io.open",
        "io.FileIO",
        "io.open_code",
        "builtins.open",
        "pathlib",  # except the constructors in ALLOW_EXACT
        "tempfile",
        "glob",
        "fileinput",
        "filecmp",
        "linecache",
        "tarfile",
        "zipfile",
        "mmap",
        "dbm",
        "shelve",
        "sqlite3",
        # Network.
        "socket",
        "socketserver",
        "ssl",
        "http",
        "urllib",
        "requests",
        "httpx",
        "aiohttp",
        "ftplib",
        "smtplib",
        "smtpd",
        "imaplib",  # picklescan GHSA-g38g-8gr9-h9xp
        "poplib",
        "nntplib",
        "telnetlib",
        "xmlrpc",
        "webbrowser",
        "wsgiref",
        "urllib3",
        "paramiko",
        # Import machinery and code execution.
        "importlib",
        "builtins.__import__",
        "pkgutil",  # pkgutil.resolve_name: universal bypass GHSA-vvpj-8cmc-gx39
        "runpy",
        "zipimport",
        "imp",
        "site",
        "sys",
        "gc",
        "inspect",
        "ctypes",
        "cffi",
        "code",
        "codeop",
        "types.CodeType",
        "types.FunctionType",
        "types.LambdaType",
        "types.MethodType",
        "types.ModuleType",
        "types.new_class",
        "marshal",
        "pickle",  # nested deserialisation (modelscan#267)
        "dill",
        "cloudpickle",
        "copyreg.add_extension",
        "copyreg.pickle",
        "builtins.eval",
        "builtins.exec",
        "builtins.compile",
        "builtins.execfile",
        "builtins.breakpoint",
        "builtins.input",
        "builtins.help",
        "builtins.exit",
        "builtins.quit",
        "builtins.getattr",
        "builtins.setattr",
        "builtins.delattr",
        "builtins.globals",
        "builtins.locals",
        "builtins.vars",
        "builtins.map",  # lazy call of any callable, forced by list()/tuple()
        "builtins.filter",
        "builtins.object.__new__",
        "builtins.reload",
        "builtins.apply",
        "builtins.file",
        # attrgetter / methodcaller walk attributes or call methods by name (picklescan GHSAs);
        # itemgetter is allowlisted above.
        "operator",
        # functools.partial / partialmethod / reduce are wrappers judged by what they wrap.
        "functools.singledispatch",
        "itertools.starmap",
        "contextlib",
        "atexit",
        "weakref.finalize",
        # Debuggers, profilers, REPLs, doc tools, packaging (picklescan GHSAs, CVE-2025-1716).
        "pip",
        "timeit",
        "cProfile",
        "profile",
        "pstats",
        "pdb",
        "bdb",
        "trace",
        "tracemalloc",
        "faulthandler",
        "idlelib",
        "_pyrepl",
        "rlcompleter",
        "readline",
        "pydoc",
        "doctest",
        "unittest",
        "test",
        "lib2to3",
        "distutils",
        "setuptools",
        "venv",
        "ensurepip",
        "zipapp",
        "compileall",
        "py_compile",
        "logging.config",
        "logging.handlers",
        "uuid._get_command_stdout",
        "uuid._popen",
        "platform",
        "sysconfig",
        "ctypes.util",
        "email",
        "mailcap",
        "tkinter",
        "turtle",
        "curses",
        "xml.sax",
        "xml.dom",
        "xml.etree.ElementTree.parse",
        "plistlib",
        "antigravity",
        # NumPy gadgets (modelscan#330 and picklescan GHSAs): nested pickles, file I/O, f2py.
        "numpy.f2py",
        "numpy.testing",
        "numpy.distutils",
        "numpy.ctypeslib",
        "numpy.load",
        "numpy.loads",
        "numpy.save",
        "numpy.savez",
        "numpy.savez_compressed",
        "numpy.savetxt",
        "numpy.loadtxt",
        "numpy.genfromtxt",
        "numpy.fromfile",
        "numpy.fromregex",
        "numpy.memmap",
        "numpy.core.memmap",
        "numpy.lib.npyio",
        "numpy.lib.format",
        "numpy.lib._npyio_impl",
        "numpy.lib._datasource",
        "numpy.lib.utils",
        "numpy.DataSource",
        "numpy.core.multiarray.fromfile",
        # pandas readers fetch URLs and unpickle (modelscan#338); pandas.eval runs expressions.
        "pandas.read_pickle",
        "pandas.read_csv",
        "pandas.read_table",
        "pandas.read_json",
        "pandas.read_html",
        "pandas.read_xml",
        "pandas.read_excel",
        "pandas.read_parquet",
        "pandas.read_feather",
        "pandas.read_orc",
        "pandas.read_sql",
        "pandas.read_sql_query",
        "pandas.read_sql_table",
        "pandas.read_hdf",
        "pandas.read_fwf",
        "pandas.read_clipboard",
        "pandas.read_stata",
        "pandas.read_sas",
        "pandas.read_spss",
        "pandas.read_gbq",
        "pandas.eval",
        "pandas.io",
        "pandas.core.computation",
        "pandas.util",
        "pandas.core.frame.DataFrame.eval",
        "pandas.core.frame.DataFrame.query",
        "pandas.core.frame.DataFrame.to_pickle",
        # PyTorch load paths and helpers that run commands (modelscan#338).
        "torch.load",
        "torch.save",
        "torch.hub",
        "torch.jit",
        "torch.package",
        "torch._inductor",
        "torch._dynamo",
        "torch.utils.collect_env",
        "torch.utils.cpp_extension",
        "torch.utils.data.datapipes",
        "torch.serialization",  # except _get_layout in ALLOW_EXACT
        "torch._C._jit",
        "torch.ops",
        "torch.distributed",
        "torch.multiprocessing",
        "torch.backends.cudnn.rnn",
        "torch.fx",
        "torch.compile",
        "torch._ops",
        "torch.library",
        # Other ML-library gadgets.
        "joblib.load",
        "joblib.numpy_pickle.load",
        "joblib.numpy_pickle._unpickle",
        "joblib.externals",
        "joblib.parallel",
        "joblib._memmapping_reducer",
        "joblib.pool",
        "joblib.memory",
        "mlflow",
        "keras.models.load_model",
        "keras.saving",
        "tensorflow.io",
        "tensorflow.keras.models.load_model",
        "tensorflow.saved_model",
        "tensorflow.compat.v1.io",
        "tensorflow.python.ops.gen_io_ops",
        "transformers.dynamic_module_utils",
        "transformers.utils.hub",
        "huggingface_hub",
        "datasets.load",
        # sklearn.datasets: the modules that download or read files. The loaders and fetchers
        # of the other modules are denied by name in ``DENY_NAME_PREFIXES``; the ``Bunch``
        # class (old dataset caches pickle ``sklearn.datasets.base.Bunch``) and the
        # ``make_*`` generators are ordinary sklearn code.
        *(
            f"sklearn.datasets.{m}"
            for m in [
                "_arff_parser",
                "_california_housing",
                "_covtype",
                "_kddcup99",
                "_lfw",
                "_olivetti_faces",
                "_openml",
                "_rcv1",
                "_species_distributions",
                "_svmlight_format_fast",
                "_svmlight_format_io",
                "_twenty_newsgroups",
                "tests",
                "california_housing",
                "covtype",
                "kddcup99",
                "lfw",
                "olivetti_faces",
                "openml",
                "rcv1",
                "species_distributions",
                "svmlight_format",
                "twenty_newsgroups",
                "mldata",
            ]
        ),
        "sklearn.utils._testing",
        "sklearn.utils._show_versions",
        "sklearn.externals._packaging",
        "scipy.io",
        "scipy.misc",
        "scipy._lib._testutils",
        "IPython",
        "jupyter_client",
        "nltk.downloader",
        "yaml",
        "jinja2",
        "jsonpickle",  # decodes JSON into arbitrary objects (a deserialiser)
        "mako",
        "sympy.parsing",
        "sympy.core.sympify",
        "builtins.__build_class__",
        "xgboost.core.Booster.load_model",
    }
)

DENY_NAME_PREFIXES: Final[dict[str, tuple[str, ...]]] = {
    # Module (and its submodules) -> name prefixes that do I/O there. Narrower than denying
    # the module: ``sklearn.datasets.base.Bunch`` (a dict subclass in old dataset caches) is
    # harmless, ``fetch_openml`` downloads and ``load_files``/``load_svmlight_file`` read paths.
    "sklearn.datasets": (
        "fetch_",
        "load_",
        "dump_",
        "get_data_home",
        "clear_data_home",
        "_fetch",
        "_load",
        "_open",
        "_download",
        "_pkl_filepath",
        "_get_local_path",
    ),
}

DENY: Final[frozenset[str]] = _HAND_DENY | DERIVED_DENY
"""Reviewed entries from ``scanners.denylist_derived`` join the hand-kept list."""

STRONG_MODULES: Final[frozenset[str]] = frozenset(
    {
        # A dotted path that passes through one of these names (``torch.serialization.pickle``,
        # ``mylib.os.system``) reaches the module itself: judged as that module.
        "os",
        "posix",
        "nt",
        "subprocess",
        "pty",
        "pickle",
        "cPickle",
        "marshal",
        "builtins",
        "__builtin__",
        "__builtins__",
        "importlib",
        "runpy",
        "socket",
        "shutil",
        "ctypes",
        "sys",
        "dill",
        "cloudpickle",
        "pip",
        "commands",
        "multiprocessing",
        "asyncio",
        "webbrowser",
    }
)

DANGEROUS_NAMES: Final[frozenset[str]] = frozenset(
    {
        # Final attribute names that run commands, import or evaluate code wherever they are
        # re-exported from. Under an unknown module they make the import HIGH, not MEDIUM.
        "system",
        "popen",
        "Popen",
        "spawn",
        "spawnl",
        "spawnlp",
        "spawnv",
        "spawnvp",
        "spawnve",
        "spawnvpe",
        "spawnv_passfds",
        "execl",
        "execle",
        "execlp",
        "execv",
        "execve",
        "execvp",
        "execvpe",
        "fork",
        "forkpty",
        "check_output",
        "check_call",
        "getoutput",
        "getstatusoutput",
        "run_command",
        "exec_command",
        "_run_entry_point",
        "eval",
        "exec",
        "execfile",
        "compile",
        "__import__",
        "import_module",
        "load_module",
        "exec_module",
        "run_path",
        "run_module",
        "runstring",
        "runcode",
        "runsource",
        "resolve_name",
        "loads",
        "load",
        "urlopen",
        "urlretrieve",
        "getattr",
        "setattr",
        "attrgetter",
        "methodcaller",
        "_get_command_stdout",
        "create_subprocess_exec",
        "create_subprocess_shell",
        "subprocess_exec",
        "subprocess_shell",
        "start_new_thread",
        "interact",
        "set_trace",
        "pipepager",
        "tempfilepager",
    }
)

SAFE_DUNDERS: Final[frozenset[str]] = frozenset({"__newobj__", "__newobj_ex__", "__main__"})
"""Dunder components legitimately found in pickle globals."""

_DUNDER = re.compile(r"__\w+__")

LOADERS: Final[dict[str, str]] = {
    # Callables that deserialise their argument, and how that argument is read:
    # ``pickle`` - bytes of a pickle stream, walked inline as a nested pickle (modelscan#267);
    # ``file``   - bytes (or a ``BytesIO`` of them) in any format the loader sniffs (a torch zip,
    #              an npy/npz, a joblib file…): handed to the engine as a child artifact;
    # ``code``   - a marshalled code object: the import is CRITICAL on its own, nothing to walk.
    # Every one of them but ``torch.storage._load_from_bytes`` is also denylisted (CRITICAL):
    # that one is how ``pickle.dumps``/``joblib.dump`` store every torch storage, so it is
    # judged by the checkpoint it carries (scanned as a child artifact; unreadable: PKL005).
    "pickle.loads": "pickle",
    "pickle._loads": "pickle",
    "pickle.load": "pickle",
    "pickle._load": "pickle",
    "pickle.Unpickler": "pickle",
    "pickle._Unpickler": "pickle",
    "dill.loads": "pickle",
    "dill.load": "pickle",
    "dill._dill.loads": "pickle",
    "dill._dill.load": "pickle",
    "cloudpickle.loads": "pickle",
    "cloudpickle.load": "pickle",
    "cloudpickle.cloudpickle.loads": "pickle",
    "numpy.loads": "pickle",
    "numpy.core.numeric.loads": "pickle",
    "joblib.numpy_pickle.loads": "pickle",
    "joblib.load": "file",
    "joblib.numpy_pickle.load": "file",
    "sklearn.externals.joblib.load": "file",
    "numpy.load": "file",
    "numpy.lib.npyio.load": "file",
    "numpy.lib._npyio_impl.load": "file",
    "numpy.lib.format.read_array": "file",
    "torch.load": "file",
    "torch.serialization.load": "file",
    "torch.storage._load_from_bytes": "file",
    "torch.jit.load": "file",
    "pandas.read_pickle": "file",
    "pandas.io.pickle.read_pickle": "file",
    "jsonpickle.decode": "file",
    "jsonpickle.unpickler.decode": "file",
    "yaml.load": "file",
    "yaml.unsafe_load": "file",
    "yaml.full_load": "file",
    "yaml.load_all": "file",
    "yaml.unsafe_load_all": "file",
    "marshal.loads": "code",
    "marshal.load": "code",
}

NESTED_LOADERS: Final[frozenset[str]] = frozenset(LOADERS)
"""Names of every deserialising callable (``LOADERS`` keys)."""

WRAPPERS: Final[dict[str, str]] = {
    # Callable wrappers: the object they build is as dangerous as the callable it binds, and
    # calling the object calls that callable (with the bound arguments first). The scanner
    # finds the bound callable in the constructor arguments or in the BUILD state that
    # ``partial.__setstate__`` applies (``(func, args, kwds, dict)``; ``partialmethod`` is
    # rebuilt with a ``{'func': …}`` dict).
    "functools.partial": "func",
    "functools.partialmethod": "func",
}

CALLERS: Final[dict[str, int]] = {
    # Callables that call one of their arguments at load time (index of that argument):
    # ``functools.reduce(f, items)`` runs ``f(a, b)``; judged as a call of ``f``.
    "functools.reduce": 0,
    # Helpers inside allowlisted namespaces that call an argument: ``pipe(obj, func)`` runs
    # ``func(obj)``, ``apply_if_callable(f, obj)`` runs ``f(obj)``.
    "pandas.core.common.pipe": 1,
    "pandas.core.common.apply_if_callable": 0,
}

IMPORT_HELPERS: Final[dict[str, str]] = {
    # Callables that return a module or attribute named by their (string) arguments. Their
    # results are resolved to that module/attribute, and whatever is then called or passed on
    # is judged under its real name. ``module``: import_module(name); ``resolve``:
    # resolve_name('pkg.mod:attr'); ``pair``: (module, name); ``getattr``: getattr(obj, name).
    # All but ``numpy.core._ufunc_reconstruct`` are denylisted as well.
    "importlib.import_module": "module",
    "builtins.__import__": "module",
    "importlib.__import__": "module",
    "pkgutil.resolve_name": "resolve",
    "numpy.core._ufunc_reconstruct": "pair",
    "builtins.getattr": "getattr",
    "operator.attrgetter": "attrgetter",
    "operator.methodcaller": "methodcaller",
}

ALLOW_REBUILD: Final[frozenset[str]] = frozenset(
    {
        # Classes that real artifacts rebuild (NEWOBJ + BUILD, copyreg) but that must not be
        # *called*: their ``__init__`` does real work. Referencing or rebuilding them is quiet;
        # a REDUCE/INST/OBJ call with arguments is judged like a call outside the allowlist.
        # accelerate's process-state singletons in ``training_args.bin``: ``__init__`` sets up
        # torch.distributed (network), a rebuild only restores the attribute dict.
        "accelerate.state.PartialState",
        "accelerate.state.AcceleratorState",
        "accelerate.state.GradientState",
        # dateutil's tzfile: ``tzfile(path)`` opens a file; pickles rebuild it from data.
        "dateutil.tz._tzfile.tzfile",
        "dateutil.tz.tz.tzfile",
    }
)

ATTRIBUTE_ALIASES: Final[dict[str, str]] = {
    # Names under which modules are commonly imported inside other modules, so that an
    # attribute walk ``somepkg.utils.np.load`` is judged as ``numpy.load``.
    "np": "numpy",
    "pd": "pandas",
    "osp": "os.path",
    "_os": "os",
    "_sys": "sys",
    "_subprocess": "subprocess",
    "_shutil": "shutil",
    "pkl": "pickle",
    "sp": "subprocess",
}

WALK_HEADS: Final[frozenset[str]] = frozenset(
    {
        # Denied top-level modules an attribute walk may reach as a module attribute
        # (``somepkg.utils.subprocess.run``). Generic words that are also common attribute or
        # nested-class names (``test``, ``code``, ``profile``, ``signal``…) count only through
        # a specific denied callable (``numpy.load``), not as a bare module head.
        "os",
        "subprocess",
        "shutil",
        "tempfile",
        "socket",
        "urllib",
        "http",
        "requests",
        "pickle",
        "marshal",
        "importlib",
        "pkgutil",
        "runpy",
        "ctypes",
        "pty",
        "multiprocessing",
        "webbrowser",
        "glob",
        "zipfile",
        "tarfile",
        "sys",
        "builtins",
        "dill",
        "cloudpickle",
        "joblib",
        "yaml",
        "operator",
        "asyncio",
        "pip",
    }
)

BENIGN_STATE_DUNDERS: Final[frozenset[str]] = frozenset(
    {
        # Special names an instance ``__dict__`` legitimately holds (``functools.wraps`` on
        # callable objects, generic aliases): data, never invoked by the loader.
        "__wrapped__",
        "__doc__",
        "__name__",
        "__qualname__",
        "__module__",
        "__annotations__",
        "__dict__",
        "__weakref__",
        "__slots__",
        "__version__",
        "__orig_class__",
        "__orig_bases__",
        "__type_params__",
    }
)


@dataclass(frozen=True, slots=True)
class Classification:
    """How bad importing one global is: ``severity`` ``None`` means allowlisted."""

    severity: Severity | None
    reason: str
    rebuild_only: bool = False
    """Allowlisted for rebuilding (NEWOBJ/BUILD/copyreg) and references, not for calls."""

    @property
    def allowed(self) -> bool:
        """True when the import is on the allowlist (or the policy's additions)."""
        return self.severity is None


ALLOWED: Final = Classification(None, "allowlisted")
REBUILD_ONLY: Final = Classification(None, "allowlisted for rebuilding only", rebuild_only=True)


def _denied(qualname: str) -> str | None:
    """The denylist entry covering ``qualname`` (itself or a parent), if any."""
    probe = qualname
    while True:
        if probe in DENY:
            return probe
        cut = probe.rfind(".")
        if cut < 0:
            break
        probe = probe[:cut]
    probe = qualname.rpartition(".")[0]
    while probe:
        prefixes = DENY_NAME_PREFIXES.get(probe)
        if prefixes is not None:
            head = qualname[len(probe) + 1 :]
            for part in head.split("."):
                if part.startswith(prefixes):
                    return f"{probe}.{part}"
        cut = probe.rfind(".")
        probe = probe[:cut] if cut > 0 else ""
    return None


def _policy_allows(qualname: str, module: str, extra: frozenset[str]) -> bool:
    if not extra:
        return False
    if qualname in extra:
        return True
    probe = module
    while probe:
        if f"{probe}.*" in extra:
            return True
        cut = probe.rfind(".")
        probe = probe[:cut] if cut > 0 else ""
    return False


def _walked_to(parts: list[str], first: int) -> tuple[str, str] | None:
    """A denied target reached by an attribute walk ``parts[first:]`` (``np.load``), if any.

    Each attribute of the walk may be a module the walked module imported (``shutil.os``,
    ``somepkg.utils.np``), so every suffix is judged as a name of its own.
    """
    for k in range(max(first, 1), len(parts)):
        head = ATTRIBUTE_ALIASES.get(parts[k], parts[k])
        suffix = canonical_module(".".join((head, *parts[k + 1 :])))
        hit = _denied(suffix)
        if hit is not None and "." in suffix and ("." in hit or hit in WALK_HEADS):
            return suffix, hit
    return None


def classify(module: str, name: str, extra: frozenset[str] = frozenset()) -> Classification:
    """Judge the import of ``name`` from ``module`` (``module`` already alias-resolved).

    Order: exact allowlist; denylist by prefix (and I/O name prefixes); attribute walks through
    dunders, through a module that is denied wherever it appears, or to a denied target
    (``sklearn.utils.os.system``); dangerous final names; rebuild-only and namespace allowlist
    (for un-dotted names); policy additions; otherwise MEDIUM.
    """
    qualname = f"{module}.{name}"
    if qualname in ALLOW_EXACT:
        return ALLOWED
    # Walks first, so that the reason names what actually runs (``os.system``), not the
    # harmless-looking module it was reached through.
    parts = qualname.split(".")
    for part in parts[1:]:
        if _DUNDER.fullmatch(part) and part not in SAFE_DUNDERS:
            return Classification(Severity.CRITICAL, f"attribute walk through {part}")
    for k, part in enumerate(parts[1:-1], start=1):
        if part in STRONG_MODULES:
            inner = canonical_module(".".join(parts[k:]))
            hit = _denied(inner) or part
            return Classification(Severity.CRITICAL, f"reaches {inner} through {part} ({hit})")
    if "." in name:
        walked = _walked_to(parts, module.count(".") + 1)
        if walked is not None:
            return Classification(
                Severity.CRITICAL, f"attribute walk reaches {walked[0]} (denylisted {walked[1]})"
            )
    entry = _denied(qualname)
    if entry is not None:
        return Classification(Severity.CRITICAL, f"denylisted ({entry})")
    if parts[-1] in DANGEROUS_NAMES:
        return Classification(
            Severity.HIGH, f"not allowlisted and named like a dangerous callable ({parts[-1]})"
        )
    if qualname in ALLOW_REBUILD:
        return REBUILD_ONLY
    if "." not in name:
        probe = module
        while True:
            if probe in ALLOW_MODULES:
                return ALLOWED
            cut = probe.rfind(".")
            if cut < 0:
                break
            probe = probe[:cut]
    if _policy_allows(qualname, module, extra):
        return Classification(None, "allowed by policy")
    if "." in name:
        return Classification(Severity.MEDIUM, "not allowlisted (dotted attribute path)")
    return Classification(Severity.MEDIUM, "not allowlisted")


__all__ = [
    "ALLOWLIST_VERSION",
    "ALLOW_EXACT",
    "ALLOW_MODULES",
    "ALLOW_REBUILD",
    "BENIGN_STATE_DUNDERS",
    "CALLERS",
    "DANGEROUS_NAMES",
    "DENY",
    "DENY_NAME_PREFIXES",
    "IMPORT_HELPERS",
    "LOADERS",
    "NESTED_LOADERS",
    "WRAPPERS",
    "Classification",
    "classify",
]
