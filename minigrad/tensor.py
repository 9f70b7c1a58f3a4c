"""`Tensor`: a NumPy array, its gradient, and the op that made it.

Names, argument order and semantics follow PyTorch. Where minigrad differs the
docstring says so. Differences that apply throughout:

- `.data` is the NumPy array itself (in torch it is a Tensor); `.numpy()` and
  `.detach().numpy()` share memory with it, as in torch.
- Tensors live on the CPU; dtypes are float32, float64, int64 and bool.
  Integer input of any width becomes int64.
- `view` is `reshape`: it copies when a view is impossible instead of failing.
- No double backward (`create_graph`), no in-place ops on tensors that require
  grad except `zero_()` on leaves' gradients.
- Binary ops (+ - * / **, where) promote dtypes as torch does (`result_dtype`);
  matmul of mixed dtypes promotes as NumPy does where torch refuses.
"""

from __future__ import annotations

import builtins
import collections
import numbers

import numpy as np

from . import autograd, dtypes
from .autograd import Function
from .dims import normalize_dim, normalize_dims
from .dtypes import bool_, float32, float64, get_default_dtype, int64, set_default_dtype  # noqa: F401  (re-exported)
from .ops import arithmetic, pointwise, reductions, softmax
from .ops import shape as shape_ops
from .random import resolve


def _to_array(data, dtype=None) -> np.ndarray:
    """Turn nested lists / scalars / arrays / Tensors into a NumPy array, torch-style:
    Python floats get the default dtype, ints int64, arrays keep a supported dtype."""
    if isinstance(data, Tensor):
        data = data.data
    is_array = isinstance(data, (np.ndarray, np.generic))
    array = np.asarray(data)
    if dtype is not None:
        return np.asarray(array, dtype=dtypes.canonical(dtype))
    if array.dtype == object:
        raise TypeError(f"cannot make a tensor from {type(data).__name__} of mixed or non-numeric items")
    if np.issubdtype(array.dtype, np.floating) and not is_array:
        return array.astype(get_default_dtype())
    if np.issubdtype(array.dtype, np.floating) and array.dtype not in (float32, float64):
        raise TypeError(f"unsupported dtype {array.dtype}; convert to float32 or float64 first")
    return np.asarray(array, dtype=dtypes.canonical(array.dtype))


def _scalar_or_tensor(x):
    """Operand for a binary op: Tensors pass, NumPy scalars become Python numbers
    (so they never upcast a float32 tensor, as in torch), arrays become tensors."""
    if isinstance(x, Tensor) or isinstance(x, numbers.Number) and not isinstance(x, np.generic):
        return x
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return Tensor._wrap(_to_array(x), False, None)
    raise TypeError(f"unsupported operand of type {type(x).__name__} for a minigrad Tensor op")


def _as_dtype(x, dtype):
    return Cast.apply(x, dtype) if isinstance(x, Tensor) and x.dtype != dtype else x


def _promoted(a, b, float_result=False):
    """Both operands of a binary op in the dtype torch gives the result;
    `float_result` (true division) turns an integer result into the default float."""
    a, b = _scalar_or_tensor(a), _scalar_or_tensor(b)
    dtype = dtypes.result_type(a, b)
    if float_result and dtype.kind != "f":
        dtype = get_default_dtype()
    a, b = _as_dtype(a, dtype), _as_dtype(b, dtype)
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):  # where(cond, 1.0, 0.0)
        a = Tensor._wrap(np.asarray(a, dtype=dtype), False, None)
    return a, b


def _check_broadcast(name, *operands):
    """Raise one clear error when the operands' shapes do not broadcast."""
    shapes = [tuple(np.shape(x.data if isinstance(x, Tensor) else x)) for x in operands]
    try:
        np.broadcast_shapes(*shapes)
    except ValueError:
        raise RuntimeError(
            f"{name}: shapes {', '.join(map(str, shapes))} cannot be broadcast together "
            "(aligned from the right, each dimension must be equal or 1)"
        ) from None


def _binary(op, a, b, float_result=False):
    """A broadcasting binary op on operands promoted as torch promotes them."""
    a, b = _promoted(a, b, float_result)
    try:
        return op.apply(a, b)
    except ValueError:
        _check_broadcast(op.__name__.lower(), a, b)
        raise


MaxResult = collections.namedtuple("MaxResult", ["values", "indices"])


class Tensor:
    """An n-dimensional array that can record the ops applied to it.

    `Tensor(data, dtype=None, requires_grad=False)` is the same as `minigrad.tensor`.
    """

    __slots__ = ("data", "grad", "requires_grad", "grad_fn", "_retains_grad", "__weakref__")
    __array_ufunc__ = None  # make NumPy defer to our reflected operators (np.float64(2) * t)

    def __init__(self, data, dtype=None, requires_grad=False):
        self.data = _to_array(data, dtype)
        self.grad = None
        self.grad_fn = None
        self._retains_grad = False
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _wrap(cls, array, requires_grad, grad_fn):
        """Fast internal constructor: no conversion, no checks."""
        t = object.__new__(cls)
        t.data = array if type(array) is np.ndarray else np.asarray(array)
        t.grad = None
        t.requires_grad = requires_grad
        t.grad_fn = grad_fn
        t._retains_grad = False
        return t

    # ---- attributes --------------------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def device(self):
        return "cpu"

    @property
    def is_leaf(self):
        return self.grad_fn is None

    @property
    def T(self):
        return self.permute(*reversed(range(self.ndim)))

    @property
    def mT(self):
        return self.transpose(-2, -1)

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[dim]

    def dim(self):
        return self.ndim

    def numel(self):
        return self.data.size

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __hash__(self):
        return id(self)

    # ---- autograd ----------------------------------------------------------------
    def requires_grad_(self, requires_grad=True):
        if requires_grad and not np.issubdtype(self.dtype, np.floating):
            raise RuntimeError(f"only floating-point tensors can require gradients, got {self.dtype}")
        if not requires_grad and self.grad_fn is not None:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor: use .detach() instead")
        self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self):
        """Keep `.grad` on this non-leaf tensor after backward (leaves always keep it)."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad() on a tensor that does not require grad")
        self._retains_grad = True

    def backward(self, gradient=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) into every leaf's `.grad`; `gradient` is required
        unless self has one element. The graph's saved values are freed afterwards
        unless `retain_graph=True`."""
        autograd.run_backward(self, gradient, retain_graph)

    def detach(self):
        """A tensor sharing this one's data, cut from the graph."""
        return Tensor._wrap(self.data, False, None)

    # ---- in place ----------------------------------------------------------------
    # minigrad records no in-place op in a graph: one is allowed where torch would not
    # need to record it (no operand requires grad, or grad mode is off), and raises
    # torch's error on a leaf that requires grad.
    def _check_in_place(self, name, other=None):
        if not autograd.is_grad_enabled():
            return
        if self.requires_grad and self.is_leaf:
            raise RuntimeError(f"{name}: a leaf Variable that requires grad is being used in an in-place "
                               "operation (wrap the update in `with minigrad.no_grad():`)")
        if self.requires_grad or (isinstance(other, Tensor) and other.requires_grad):
            raise RuntimeError(f"{name}: minigrad does not record in-place ops in a graph; "
                               "use the out-of-place form (e.g. `x = x + y`) or no_grad()")

    def _in_place(self, name, ufunc, other, float_result=False):
        self._check_in_place(name, other)
        operand = _scalar_or_tensor(other)
        dtype = dtypes.result_type(self, operand)
        if float_result and dtype.kind != "f":
            dtype = get_default_dtype()
        if not np.can_cast(dtype, self.dtype, "same_kind"):
            raise RuntimeError(f"{name}: result type {dtype} can't be cast to the desired output type {self.dtype}")
        value = operand.data if isinstance(operand, Tensor) else operand
        ufunc(self.data, value, out=self.data, casting="unsafe")
        return self

    def add_(self, other):
        return self._in_place("add_", np.add, other)

    def sub_(self, other):
        return self._in_place("sub_", np.subtract, other)

    def mul_(self, other):
        return self._in_place("mul_", np.multiply, other)

    def div_(self, other):
        return self._in_place("div_", np.true_divide, other, float_result=True)

    __iadd__, __isub__, __imul__, __itruediv__ = add_, sub_, mul_, div_

    def fill_(self, value, _name="fill_"):
        self._check_in_place(_name, value)
        self.data[...] = value.item() if isinstance(value, Tensor) else value
        return self

    def zero_(self):
        """Fill with zeros in place (for gradients: `p.grad.zero_()`)."""
        return self.fill_(0, "zero_")

    def copy_(self, src):
        """Copy `src`'s values (broadcast to self's shape) into self."""
        self._check_in_place("copy_", src)
        self.data[...] = src.data if isinstance(src, Tensor) else np.asarray(src)
        return self

    def __setitem__(self, index, value):
        self._check_in_place("item assignment", value)
        self.data[_raw_index(index)] = value.data if isinstance(value, Tensor) else value

    def __getattr__(self, name):
        """Only reached for a name Tensor lacks: say so, in torch user's terms."""
        raise AttributeError(f"minigrad.Tensor has no attribute {name!r}: minigrad implements a subset of "
                             "torch's Tensor API and does not have it")

    # ---- conversion --------------------------------------------------------------
    def numpy(self):
        if self.requires_grad:
            raise RuntimeError("numpy() on a tensor that requires grad: call .detach().numpy()")
        return self.data

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {tuple(self.shape)}")
        return self.data.item()

    def tolist(self):
        return self.data.tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        if self.data.size != 1:
            raise RuntimeError("the truth value of a tensor with more than one element is ambiguous")
        return builtins.bool(self.item())

    def to(self, *args, dtype=None, device=None):
        """`to(dtype)`, `to(device)`, `to(device, dtype)`, `to(other)` or keywords, as torch:
        a cast (differentiable between float types); the device must be the CPU."""
        dtype = to_arguments(args, dtype, device, "to")
        return self if dtype is None or dtype == self.dtype else Cast.apply(self, dtype)

    def cpu(self):
        return self

    def float(self):
        return self.to(float32)

    def double(self):
        return self.to(float64)

    def long(self):
        return self.to(int64)

    def int(self):
        """Difference from torch: minigrad's only integer dtype is int64, so this is `long()`."""
        return self.to(int64)

    def half(self):
        raise TypeError("half(): float16 is not supported by minigrad (float32, float64, int64, bool); "
                        "use .float()")

    bfloat16 = half

    def bool(self):
        return self.to(bool_)

    def type_as(self, other):
        return self.to(other.dtype)

    def clone(self):
        return Clone.apply(self)

    def __repr__(self):
        body = np.array2string(self.data, separator=", ", precision=4, prefix="tensor(")
        extras = []
        default = get_default_dtype()
        if self.dtype not in (default, int64, bool_) or (self.dtype != default and self.data.size == 0):
            extras.append(f"dtype=minigrad.{self.dtype}")
        if self.grad_fn is not None:
            extras.append(f"grad_fn={self.grad_fn!r}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    # ---- arithmetic ----------------------------------------------------------------
    def __add__(self, other):
        return _binary(arithmetic.Add, self, other)

    def __radd__(self, other):
        return _binary(arithmetic.Add, other, self)

    def __sub__(self, other):
        return _binary(arithmetic.Sub, self, other)

    def __rsub__(self, other):
        return _binary(arithmetic.Sub, other, self)

    def __mul__(self, other):
        return _binary(arithmetic.Mul, self, other)

    def __rmul__(self, other):
        return _binary(arithmetic.Mul, other, self)

    def __truediv__(self, other):
        return _binary(arithmetic.Div, self, other, float_result=True)

    def __rtruediv__(self, other):
        return _binary(arithmetic.Div, other, self, float_result=True)

    def __neg__(self):
        return arithmetic.Neg.apply(self)

    def __pow__(self, exponent):
        return _binary(arithmetic.Pow, self, exponent)

    def __rpow__(self, base):
        return _binary(arithmetic.Pow, base, self)

    def __matmul__(self, other):
        return arithmetic.MatMul.apply(self, _scalar_or_tensor(other))

    def __rmatmul__(self, other):
        return arithmetic.MatMul.apply(_scalar_or_tensor(other), self)

    add, sub, mul, div, pow, matmul = __add__, __sub__, __mul__, __truediv__, __pow__, __matmul__

    # comparisons and logic: bool results, never differentiable
    def _compare(self, other, op):
        other = other.data if isinstance(other, Tensor) else other
        return Tensor._wrap(op(self.data, other), False, None)

    def __lt__(self, other):
        return self._compare(other, np.less)

    def __le__(self, other):
        return self._compare(other, np.less_equal)

    def __gt__(self, other):
        return self._compare(other, np.greater)

    def __ge__(self, other):
        return self._compare(other, np.greater_equal)

    def __eq__(self, other):
        return self._compare(other, np.equal)

    def __ne__(self, other):
        return self._compare(other, np.not_equal)

    # & | ^ ~ are bitwise on integer and bool tensors (logical on bool), as in torch
    def _bitwise(self, other, op, symbol):
        other = other.data if isinstance(other, Tensor) else other
        for dtype in (self.dtype, np.result_type(other)):
            if dtype.kind not in "biu":
                raise TypeError(f"{symbol} needs integer or bool tensors, got {dtype}")
        return Tensor._wrap(_to_array(op(self.data, other)), False, None)

    def __and__(self, other):
        return self._bitwise(other, np.bitwise_and, "&")

    def __or__(self, other):
        return self._bitwise(other, np.bitwise_or, "|")

    def __xor__(self, other):
        return self._bitwise(other, np.bitwise_xor, "^")

    __rand__, __ror__, __rxor__ = __and__, __or__, __xor__

    def __invert__(self):
        if self.dtype.kind not in "bi":
            raise TypeError(f"~ needs an integer or bool tensor, got {self.dtype}")
        return Tensor._wrap(~self.data, False, None)

    # ---- elementwise ----------------------------------------------------------------
    def exp(self):
        return pointwise.Exp.apply(self)

    def log(self):
        return pointwise.Log.apply(self)

    def sqrt(self):
        return pointwise.Sqrt.apply(self)

    def abs(self):
        return pointwise.Abs.apply(self)

    def tanh(self):
        return pointwise.Tanh.apply(self)

    def sigmoid(self):
        return pointwise.Sigmoid.apply(self)

    def relu(self):
        return pointwise.ReLU.apply(self)

    def clamp(self, min=None, max=None):
        return pointwise.Clamp.apply(self, min, max)

    clip = clamp

    def masked_fill(self, mask, value):
        """Entries where `mask` (a bool tensor broadcastable to self) is True become `value`.
        Difference from torch: a tensor `value` is read as a number and gets no gradient."""
        mask = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
        if mask.dtype != bool_:
            raise TypeError(f"masked_fill: mask must be a bool tensor, got {mask.dtype}")
        value = value.item() if isinstance(value, Tensor) else value
        return pointwise.MaskedFill.apply(self, mask, value)

    def softmax(self, dim):
        return softmax.Softmax.apply(self, dim)

    def log_softmax(self, dim):
        from .nn import functional

        return functional.log_softmax(self, dim)

    # ---- reductions -----------------------------------------------------------------
    def sum(self, dim=None, keepdim=False):
        return reductions.Sum.apply(self, dim, keepdim)

    def mean(self, dim=None, keepdim=False):
        """Σ over `dim` / N, N the number of entries summed (all of them without `dim`)."""
        if not np.issubdtype(self.dtype, np.floating):
            raise RuntimeError(f"mean: needs a floating-point tensor, got {self.dtype}")
        dims = normalize_dims(dim, self.ndim, "mean")
        return self.sum(dims, keepdim) / int(np.prod([self.shape[d] for d in dims]))

    def var(self, dim=None, *, correction=1, keepdim=False, unbiased=None):
        """Variance; `correction=1` (default) divides by N-1, `correction=0` by N."""
        if unbiased is not None:
            correction = 1 if unbiased else 0
        return reductions.Var.apply(self, dim, correction, keepdim)

    def std(self, dim=None, *, correction=1, keepdim=False, unbiased=None):
        """Standard deviation: sqrt of `var` with the same arguments."""
        return self.var(dim, correction=correction, keepdim=keepdim, unbiased=unbiased).sqrt()

    def any(self, dim=None, keepdim=False):
        dims = None if dim is None else normalize_dims(dim, self.ndim, "any")
        return Tensor._wrap(np.any(self.data, axis=dims, keepdims=keepdim), False, None)

    def all(self, dim=None, keepdim=False):
        dims = None if dim is None else normalize_dims(dim, self.ndim, "all")
        return Tensor._wrap(np.all(self.data, axis=dims, keepdims=keepdim), False, None)

    def topk(self, k, dim=-1, largest=True, sorted=True):
        """(values, indices) of the k largest (or smallest) entries along `dim`, largest
        first. Difference from torch: ties are ordered by position."""
        (d,) = normalize_dims(dim, self.ndim, "topk")
        if not 0 <= k <= (self.shape[d] if self.ndim else 1):
            raise RuntimeError(f"topk: k={k} is out of range for dimension {d} of size {self.shape[d]}")
        keys = -self.data if largest else self.data
        order = np.argsort(keys, axis=d, kind="stable")
        indices = np.take(order, np.arange(k), axis=d)
        return MaxResult(self.gather(d, indices), Tensor._wrap(indices, False, None))

    def amax(self, dim=None, keepdim=False):
        return reductions.Amax.apply(self, dim, keepdim)

    def amin(self, dim=None, keepdim=False):
        return -reductions.Amax.apply(-self, dim, keepdim)

    def max(self, dim=None, keepdim=False):
        """max() -> the largest entry; max(dim) -> (values, indices) as torch."""
        if dim is None:
            return reductions.Amax.apply(self, None, False)
        values = reductions.MaxDim.apply(self, dim, keepdim)
        return MaxResult(values, self.argmax(dim, keepdim))

    def min(self, dim=None, keepdim=False):
        if dim is None:
            return self.amin()
        values = -reductions.MaxDim.apply(-self, dim, keepdim)
        return MaxResult(values, self.argmin(dim, keepdim))

    def argmax(self, dim=None, keepdim=False):
        return Tensor._wrap(np.argmax(self.data, axis=dim, keepdims=keepdim), False, None)

    def argmin(self, dim=None, keepdim=False):
        return Tensor._wrap(np.argmin(self.data, axis=dim, keepdims=keepdim), False, None)

    # ---- shape -----------------------------------------------------------------------
    def reshape(self, *shape):
        shape = shape[0] if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)) else shape
        return shape_ops.Reshape.apply(self, tuple(shape))

    view = reshape

    def flatten(self, start_dim=0, end_dim=-1):
        if self.ndim == 0:
            return self.reshape(1)
        s, e = normalize_dim(start_dim, self.ndim, "flatten"), normalize_dim(end_dim, self.ndim, "flatten")
        return self.reshape(self.shape[:s] + (-1,) + self.shape[e + 1:])

    def permute(self, *dims):
        dims = dims[0] if len(dims) == 1 and not isinstance(dims[0], (int, np.integer)) else dims
        if sorted(d % max(self.ndim, 1) for d in dims) != list(range(self.ndim)):
            raise RuntimeError(f"permute: dims {tuple(dims)} are not a permutation of {self.ndim} dimensions")
        return shape_ops.Permute.apply(self, tuple(d % self.ndim for d in dims))

    def transpose(self, dim0, dim1):
        dim0, dim1 = normalize_dim(dim0, self.ndim, "transpose"), normalize_dim(dim1, self.ndim, "transpose")
        order = list(range(self.ndim))
        order[dim0], order[dim1] = order[dim1], order[dim0]
        return shape_ops.Permute.apply(self, tuple(order))

    def t(self):
        if self.ndim > 2:
            raise RuntimeError(f"t() expects a tensor of at most 2 dimensions, got {self.ndim}")
        return self.transpose(0, 1) if self.ndim == 2 else self

    def unsqueeze(self, dim):
        dim = normalize_dim(dim, self.ndim, "unsqueeze", extra=1)
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def squeeze(self, dim=None):
        if dim is None:
            return self.reshape(tuple(n for n in self.shape if n != 1))
        dims = {normalize_dim(d, self.ndim, "squeeze") for d in ((dim,) if isinstance(dim, (int, np.integer)) else dim)}
        return self.reshape(tuple(n for i, n in enumerate(self.shape) if not (i in dims and n == 1)))

    def expand(self, *sizes):
        sizes = sizes[0] if len(sizes) == 1 and not isinstance(sizes[0], (int, np.integer)) else sizes
        lead = len(sizes) - self.ndim
        if lead < 0:
            raise RuntimeError(f"expand: {len(sizes)} sizes given for a tensor of {self.ndim} dimensions")
        target = tuple(
            self.shape[i - lead] if n == -1 and i >= lead else n for i, n in enumerate(sizes)
        )
        try:
            np.broadcast_shapes(self.shape, target)
        except ValueError:
            raise RuntimeError(f"expand: cannot expand shape {tuple(self.shape)} to {target}") from None
        return shape_ops.Expand.apply(self, target)

    def repeat(self, *sizes):
        """Tile the tensor `sizes[i]` times along each dim (leading sizes add dims), as torch."""
        sizes = _size(sizes)
        if len(sizes) < self.ndim:
            raise RuntimeError(f"repeat: {len(sizes)} sizes given for a tensor of {self.ndim} dimensions; "
                               "give at least one per dimension")
        shape = (1,) * (len(sizes) - self.ndim) + tuple(self.shape)
        interleaved = self.reshape(tuple(n for size in shape for n in (1, size)))
        tiled = interleaved.expand(tuple(n for pair in zip(sizes, shape) for n in pair))
        return tiled.reshape(tuple(r * n for r, n in zip(sizes, shape)))

    def expand_as(self, other):
        return self.expand(other.shape)

    def repeat_interleave(self, repeats, dim):
        """Each slice along `dim` repeated `repeats` (an int) times in place."""
        from .nn.functional import repeat_interleave

        return repeat_interleave(self, repeats, dim)

    def contiguous(self):
        return self if self.data.flags.c_contiguous else Clone.apply(self)

    def __getitem__(self, index):
        return shape_ops.Index.apply(self, _raw_index(index))

    def gather(self, dim, index):
        return shape_ops.Gather.apply(self, dim, _index_array(index, "gather"))

    def split(self, split_size_or_sections, dim=0):
        """Pieces along `dim`: of `split_size` each (the last may be smaller), or of
        the listed sizes."""
        dim = normalize_dim(dim, self.ndim, "split")
        n = self.shape[dim]
        if isinstance(split_size_or_sections, (int, np.integer)):
            step = int(split_size_or_sections)
            if step <= 0:
                raise ValueError(f"split: split_size must be positive, got {step}")
            sizes = [min(step, n - s) for s in range(0, n, step)]
        else:
            sizes = list(split_size_or_sections)
            if sum(sizes) != n:
                raise ValueError(f"split: sections {sizes} sum to {sum(sizes)}, not to the size {n} of dim {dim}")
        pieces, start = [], 0
        lead = (slice(None),) * dim
        for size in sizes:
            pieces.append(self[lead + (slice(start, start + size),)])
            start += size
        return tuple(pieces)

    def chunk(self, chunks, dim=0):
        """`chunks` pieces along `dim` (fewer if the size does not allow), as torch."""
        if not isinstance(chunks, (int, np.integer)) or chunks <= 0:
            raise ValueError(f"chunk: chunks must be a positive int, got {chunks!r}")
        dim = normalize_dim(dim, self.ndim, "chunk")
        n = self.shape[dim]
        return self.split(max(1, -(-n // chunks)), dim)

    def unbind(self, dim=0):
        dim = normalize_dim(dim, self.ndim, "unbind")
        lead = (slice(None),) * dim
        return tuple(self[lead + (i,)] for i in range(self.shape[dim]))


def check_device(device, where):
    """minigrad tensors live on the CPU: accept None and 'cpu' (or 'cpu:0'), refuse the rest."""
    name = getattr(device, "type", device)
    if device is not None and str(name).split(":")[0] != "cpu":
        raise ValueError(f"{where}: minigrad runs on the CPU only, got device={device!r} "
                         "(the torch backend runs on CUDA)")


def to_arguments(args, dtype, device, where):
    """The dtype (canonical, or None) that `to(*args, dtype=, device=)` asks for, as torch
    reads them: a tensor gives its dtype, a string that is no dtype name is a device."""
    for arg in args:
        if isinstance(arg, Tensor):
            dtype = arg.dtype
        elif isinstance(arg, str) and not dtypes.is_dtype_name(arg):
            device = arg
        else:
            dtype = arg
    check_device(device, where)
    return None if dtype is None else dtypes.canonical(dtype)


def _index_array(index, where):
    array = index.data if isinstance(index, Tensor) else np.asarray(index)
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{where}: index must be an integer tensor, got {array.dtype}")
    return array


def _raw_index(index):
    """Tensors and lists inside an index become NumPy arrays."""
    if isinstance(index, tuple):
        return tuple(_raw_index(i) for i in index)
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, list):
        return np.asarray(index)
    return index


class Cast(Function):
    """out = a as another dtype;  d/da = g cast back (the engine casts)."""

    @staticmethod
    def forward(ctx, a, dtype):
        return a.astype(dtype)

    @staticmethod
    def backward(ctx, g):
        return g, None


class Clone(Function):
    """out = a copy of a, in C order (so it also serves `contiguous`);  d/da = g."""

    @staticmethod
    def forward(ctx, a):
        return a.copy()

    @staticmethod
    def backward(ctx, g):
        return g


# ---- creation ------------------------------------------------------------------------
def tensor(data, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A new tensor holding a copy of `data` (nested lists, scalars or arrays)."""
    check_device(device, "tensor")
    t = Tensor(data, dtype=dtype, requires_grad=False)
    if t.data is data or (isinstance(data, Tensor) and t.data is data.data):
        t.data = t.data.copy()
    return t.requires_grad_(requires_grad) if requires_grad else t


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing memory with `array` (as torch.from_numpy)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy expects a numpy.ndarray, got {type(array).__name__}")
    return Tensor._wrap(_to_array(array), False, None)


def _size(size):
    if len(size) == 1 and not isinstance(size[0], (int, np.integer)):
        size = tuple(size[0])
    return tuple(int(n) for n in size)


def zeros(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    check_device(device, "zeros")
    return Tensor(np.zeros(_size(size), dtypes.or_default(dtype)), requires_grad=requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    check_device(device, "ones")
    return Tensor(np.ones(_size(size), dtypes.or_default(dtype)), requires_grad=requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A tensor of `size` filled with `fill_value`; without `dtype` the fill value
    decides it, as torch: bool -> bool, int -> int64, float -> the default dtype."""
    check_device(device, "full")
    if dtype is None and isinstance(fill_value, (bool, np.bool_)):
        dtype = bool_
    elif dtype is None and isinstance(fill_value, (numbers.Integral, np.integer)):
        dtype = int64
    return Tensor(np.full(_size((size,)), fill_value, dtypes.or_default(dtype)), requires_grad=requires_grad)


def zeros_like(t, dtype=None, requires_grad=False) -> Tensor:
    return zeros(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad)


def ones_like(t, dtype=None, requires_grad=False) -> Tensor:
    return ones(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad)


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Standard normal samples from `generator` (default: the global one)."""
    check_device(device, "randn")
    dtype = dtypes.or_default(dtype)
    data = resolve(generator).standard_normal(_size(size), dtype=dtype)
    return Tensor(data, requires_grad=requires_grad)


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Uniform samples in [0, 1) from `generator` (default: the global one)."""
    check_device(device, "rand")
    dtype = dtypes.or_default(dtype)
    data = resolve(generator).random(_size(size), dtype=dtype)
    return Tensor(data, requires_grad=requires_grad)


def randint(low, high, size, generator=None) -> Tensor:
    return Tensor(resolve(generator).integers(low, high, size=_size((size,)), dtype=np.int64))


def arange(start, end=None, step=1, dtype=None, device=None) -> Tensor:
    """Like torch.arange: int64 for integer arguments, the default float dtype otherwise."""
    check_device(device, "arange")
    if end is None:
        start, end = 0, start
    is_int = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
    dtype = dtypes.canonical(dtype) if dtype is not None else (int64 if is_int else get_default_dtype())
    return Tensor(np.arange(start, end, step, dtype=dtype))


def cat(tensors, dim=0) -> Tensor:
    """Join tensors along an existing dim."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty list of tensors")
    return shape_ops.Cat.apply(*tensors, dim=dim)


def stack(tensors, dim=0) -> Tensor:
    """Join same-shaped tensors along a new dim."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty list of tensors")
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) != 1:
        raise RuntimeError(f"stack: all inputs need the same shape, got {sorted(shapes)}")
    dim = normalize_dim(dim, tensors[0].ndim, "stack", extra=1)
    return cat([t.unsqueeze(dim) for t in tensors], dim)


def where(condition, input, other) -> Tensor:
    """input where condition else other; condition gets no gradient."""
    cond = condition.data if isinstance(condition, Tensor) else np.asarray(condition)
    if cond.dtype != bool_:
        raise TypeError(f"where: condition must be a bool tensor, got {cond.dtype}")
    _check_broadcast("where", cond, input, other)
    return pointwise.Where.apply(cond, *_promoted(input, other))


def tril(t, diagonal=0) -> Tensor:
    """The lower triangle of the last two dims (entries j <= i + diagonal), the rest 0."""
    return shape_ops.Triangle.apply(t, diagonal, False)


def triu(t, diagonal=0) -> Tensor:
    """The upper triangle of the last two dims (entries j >= i + diagonal), the rest 0."""
    return shape_ops.Triangle.apply(t, diagonal, True)


def einsum(equation, *operands) -> Tensor:
    """torch.einsum on labelled axes (operands as separate arguments or one list);
    minigrad has no ellipsis and no label repeated within one operand."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    from .ops.einsum import Einsum

    return Einsum.apply(*operands, equation=equation)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False) -> Tensor:
    check_device(device, "linspace")
    return Tensor(np.linspace(start, end, int(steps), dtype=dtypes.or_default(dtype)), requires_grad=requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    check_device(device, "eye")
    return Tensor(np.eye(n, m, dtype=dtypes.or_default(dtype)), requires_grad=requires_grad)
