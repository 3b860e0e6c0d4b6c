// cnnzoo's convolutions through oneDNN 3.2 (PyPI onednn-cpu-gomp) as XLA:CPU FFI handlers: NHWC float32
// activations read and written in place, HWIO weights reordered into the blocked layout oneDNN picks for
// each pass (its brgemm / JIT kernels; with plain HWIO weights both backward passes fall back to
// im2col + GEMM). Built by cnnzoo/kernels/build.py on first use. The wheel has no headers: the few C API
// functions are declared below and the enum values are oneDNN 3.2's (include/oneapi/dnnl/dnnl_types.h);
// kernels/onednn.py refuses a library whose dnnl_version() is not 3.2. Every oneDNN status is checked:
// a failure is an XLA error naming the step, never a silent wrong result.
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>
#include "xla/ffi/api/ffi.h"
namespace ffi = xla::ffi;

extern "C" {
typedef void* h;
typedef const void* ch;
typedef struct { int arg; h memory; } exec_arg;
int dnnl_engine_create(h* engine, int kind, size_t index);
int dnnl_stream_create(h* stream, h engine, unsigned flags);
int dnnl_memory_desc_create_with_tag(h* md, int ndims, const int64_t* dims, int dt, int tag);
int dnnl_memory_desc_create_with_strides(h* md, int ndims, const int64_t* dims, int dt, const int64_t* strides);
int dnnl_convolution_forward_primitive_desc_create(h* pd, h engine, int prop, int alg, ch src, ch wei, ch bias, ch dst,
    const int64_t* st, const int64_t* dil, const int64_t* pl, const int64_t* pr, ch attr);
int dnnl_convolution_backward_data_primitive_desc_create(h* pd, h engine, int alg, ch diff_src, ch wei, ch diff_dst,
    const int64_t* st, const int64_t* dil, const int64_t* pl, const int64_t* pr, ch hint, ch attr);
int dnnl_convolution_backward_weights_primitive_desc_create(h* pd, h engine, int alg, ch src, ch diff_wei, ch diff_bias,
    ch diff_dst, const int64_t* st, const int64_t* dil, const int64_t* pl, const int64_t* pr, ch hint, ch attr);
int dnnl_reorder_primitive_desc_create(h* pd, ch src_md, h src_engine, ch dst_md, h dst_engine, ch attr);
int dnnl_primitive_create(h* prim, ch pd);
ch dnnl_primitive_desc_query_md(ch pd, int what, int index);
size_t dnnl_memory_desc_get_size(ch md);
int dnnl_memory_create(h* mem, ch md, h engine, void* handle);
int dnnl_memory_destroy(h mem);
int dnnl_primitive_execute(ch prim, h stream, int nargs, const exec_arg* args);
int dnnl_stream_wait(h stream);
}

namespace {
constexpr int F32 = 3, ANY = 1, FWD = 64, DIRECT = 1;
constexpr int SRC = 1, DST = 17, WEI = 33, DSRC = 129, DDST = 145, DWEI = 161;
constexpr int Q_WEI = 131, Q_DWEI = 132;

struct Engine {
  h engine = nullptr, stream = nullptr;
  int status = 0;  // dnnl_success is 0
  Engine() {
    status = dnnl_engine_create(&engine, 1, 0);
    if (status == 0) status = dnnl_stream_create(&stream, engine, 1);
  }
};
Engine& engine() { static Engine e; return e; }

h md_strides(std::vector<int64_t> dims, std::vector<int64_t> strides, bool& ok) {
  int64_t d[12] = {0}, s[12] = {0};
  for (size_t i = 0; i < dims.size(); ++i) { d[i] = dims[i]; s[i] = strides[i]; }
  h m = nullptr; ok &= dnnl_memory_desc_create_with_strides(&m, 4, d, F32, s) == 0; return m;
}
h md_any(std::vector<int64_t> dims, bool& ok) {
  int64_t d[12] = {0}; for (size_t i = 0; i < 4; ++i) d[i] = dims[i];
  h m = nullptr; ok &= dnnl_memory_desc_create_with_tag(&m, 4, d, F32, ANY) == 0; return m;
}

struct Conv {
  h src, dst, hwio, pds[3], prims[3], reorders[3];
  ch wmd[3];
  bool ok = true;
  Conv(int64_t n, int64_t hh, int64_t ww, int64_t ci, int64_t co, int64_t kh, int64_t kw, int64_t s,
       int64_t pt, int64_t pb, int64_t pl, int64_t pr) {
    Engine& e = engine();
    int64_t ho = (hh + pt + pb - kh) / s + 1, wo = (ww + pl + pr - kw) / s + 1;
    src = md_strides({n, ci, hh, ww}, {hh * ww * ci, 1, ww * ci, ci}, ok);
    dst = md_strides({n, co, ho, wo}, {ho * wo * co, 1, wo * co, co}, ok);
    hwio = md_strides({co, ci, kh, kw}, {1, co, kw * ci * co, ci * co}, ok);
    h any = md_any({co, ci, kh, kw}, ok);
    if (!ok) return;
    int64_t st[12] = {s, s}, dil[12] = {0, 0}, L[12] = {pt, pl}, R[12] = {pb, pr};
    ok &= dnnl_convolution_forward_primitive_desc_create(&pds[0], e.engine, FWD, DIRECT, src, any, nullptr, dst, st, dil, L, R, nullptr) == 0;
    if (!ok) return;
    ok &= dnnl_convolution_backward_data_primitive_desc_create(&pds[1], e.engine, DIRECT, src, any, dst, st, dil, L, R, pds[0], nullptr) == 0;
    ok &= dnnl_convolution_backward_weights_primitive_desc_create(&pds[2], e.engine, DIRECT, src, any, nullptr, dst, st, dil, L, R, pds[0], nullptr) == 0;
    if (!ok) return;
    for (int i = 0; i < 3; ++i) ok &= dnnl_primitive_create(&prims[i], pds[i]) == 0;
    wmd[0] = dnnl_primitive_desc_query_md(pds[0], Q_WEI, 0);
    wmd[1] = dnnl_primitive_desc_query_md(pds[1], Q_WEI, 0);
    wmd[2] = dnnl_primitive_desc_query_md(pds[2], Q_DWEI, 0);
    if (!ok || !wmd[0] || !wmd[1] || !wmd[2]) { ok = false; return; }
    h rpd = nullptr;
    ok &= dnnl_reorder_primitive_desc_create(&rpd, hwio, e.engine, wmd[0], e.engine, nullptr) == 0; ok &= dnnl_primitive_create(&reorders[0], rpd) == 0;
    ok &= dnnl_reorder_primitive_desc_create(&rpd, hwio, e.engine, wmd[1], e.engine, nullptr) == 0; ok &= dnnl_primitive_create(&reorders[1], rpd) == 0;
    ok &= dnnl_reorder_primitive_desc_create(&rpd, wmd[2], e.engine, hwio, e.engine, nullptr) == 0; ok &= dnnl_primitive_create(&reorders[2], rpd) == 0;
  }
};

// One call at a time. Needed, not a convenience: XLA:CPU may run independent convolutions (a layer's two
// gradients) on two of its pool's threads at once, and the wheel's oneDNN is built with
// ONEDNN_ENABLE_CONCURRENT_EXEC=OFF, whose documented thread-safety ("dnnl_scratchpad_mode_library")
// lets primitives run in parallel only on the thread that created them -- XLA's pool moves calls
// between threads -- and shares one scratchpad among them. Lifting it would take user-managed
// scratchpads and a stream per thread, and two OpenMP teams would then share the same cores: oneDNN
// already spreads each call over every core. Measured (benchmarks/README.md, "Measurements behind the
// code's choices"): XLA does call in concurrently, rarely (1 of 7,566 calls found the lock held over
// three ResNet-20 runs), and the lock costs no measurable time (an epoch 3.01-3.12 s with it,
// 3.05-3.10 s without).
std::mutex mu;
std::map<std::vector<int64_t>, std::unique_ptr<Conv>> cache;

int run(ch prim, std::vector<std::tuple<int, ch, void*>> args) {
  Engine& e = engine();
  std::vector<exec_arg> packed; std::vector<h> mems;
  int st = 0;
  for (auto& [arg, md, ptr] : args) { h m = nullptr; st |= dnnl_memory_create(&m, md, e.engine, ptr); mems.push_back(m); packed.push_back({arg, m}); }
  if (st) { for (h m : mems) if (m) dnnl_memory_destroy(m); return st; }
  st = dnnl_primitive_execute(prim, e.stream, (int)packed.size(), packed.data());
  if (st == 0) st = dnnl_stream_wait(e.stream);
  for (h m : mems) dnnl_memory_destroy(m);
  return st;
}

// which 0: y = conv(a=x, b=w); 1: dx = input_grad(a=dy, b=w); 2: dw = kernel_grad(a=x, b=dy)
ffi::Error Impl(int which, ffi::Buffer<ffi::F32> a, ffi::Buffer<ffi::F32> b, ffi::ResultBuffer<ffi::F32> out,
                int64_t s, int64_t pt, int64_t pb, int64_t pl, int64_t pr) {
  auto xd = which == 1 ? out->dimensions() : a.dimensions();
  auto kd = which == 2 ? out->dimensions() : b.dimensions();
  std::vector<int64_t> key = {xd[0], xd[1], xd[2], xd[3], kd[0], kd[1], kd[2], kd[3], s, pt, pb, pl, pr};
  std::lock_guard<std::mutex> lock(mu);
  if (engine().status)
    return ffi::Error(ffi::ErrorCode::kInternal, "oneDNN: cannot create a CPU engine and stream (status " +
                      std::to_string(engine().status) + ")");
  auto& c = cache[key];
  if (!c) c = std::make_unique<Conv>(xd[0], xd[1], xd[2], xd[3], kd[3], kd[0], kd[1], s, pt, pb, pl, pr);
  if (!c->ok) return ffi::Error(ffi::ErrorCode::kInternal, "oneDNN: no convolution for these shapes");
  int st = 0;
  if (which == 0) {
    std::vector<float> wb(dnnl_memory_desc_get_size(c->wmd[0]) / 4);
    st |= run(c->reorders[0], {{SRC, c->hwio, b.typed_data()}, {DST, c->wmd[0], wb.data()}});
    st |= run(c->prims[0], {{SRC, c->src, a.typed_data()}, {WEI, c->wmd[0], wb.data()}, {DST, c->dst, out->typed_data()}});
  } else if (which == 1) {
    std::vector<float> wb(dnnl_memory_desc_get_size(c->wmd[1]) / 4);
    st |= run(c->reorders[1], {{SRC, c->hwio, b.typed_data()}, {DST, c->wmd[1], wb.data()}});
    st |= run(c->prims[1], {{DDST, c->dst, a.typed_data()}, {WEI, c->wmd[1], wb.data()}, {DSRC, c->src, out->typed_data()}});
  } else {
    std::vector<float> wb(dnnl_memory_desc_get_size(c->wmd[2]) / 4);
    st |= run(c->prims[2], {{SRC, c->src, a.typed_data()}, {DDST, c->dst, b.typed_data()}, {DWEI, c->wmd[2], wb.data()}});
    st |= run(c->reorders[2], {{SRC, c->wmd[2], wb.data()}, {DST, c->hwio, out->typed_data()}});
  }
  if (st) return ffi::Error(ffi::ErrorCode::kInternal, "oneDNN: execution failed");
  return ffi::Error::Success();
}
#define BIND ffi::Ffi::Bind().Arg<ffi::Buffer<ffi::F32>>().Arg<ffi::Buffer<ffi::F32>>().Ret<ffi::Buffer<ffi::F32>>() \
  .Attr<int64_t>("stride").Attr<int64_t>("pt").Attr<int64_t>("pb").Attr<int64_t>("pl").Attr<int64_t>("pr")
ffi::Error Fwd(ffi::Buffer<ffi::F32> a, ffi::Buffer<ffi::F32> b, ffi::ResultBuffer<ffi::F32> o, int64_t s, int64_t pt, int64_t pb, int64_t pl, int64_t pr) { return Impl(0, a, b, o, s, pt, pb, pl, pr); }
ffi::Error Ig(ffi::Buffer<ffi::F32> a, ffi::Buffer<ffi::F32> b, ffi::ResultBuffer<ffi::F32> o, int64_t s, int64_t pt, int64_t pb, int64_t pl, int64_t pr) { return Impl(1, a, b, o, s, pt, pb, pl, pr); }
ffi::Error Kg(ffi::Buffer<ffi::F32> a, ffi::Buffer<ffi::F32> b, ffi::ResultBuffer<ffi::F32> o, int64_t s, int64_t pt, int64_t pb, int64_t pl, int64_t pr) { return Impl(2, a, b, o, s, pt, pb, pl, pr); }
}  // namespace

// exported: the forward pass, the input gradient and the kernel gradient (registered by onednn.py)
XLA_FFI_DEFINE_HANDLER_SYMBOL(CnnzooOnednnConvForward, Fwd, BIND);
XLA_FFI_DEFINE_HANDLER_SYMBOL(CnnzooOnednnConvInputGrad, Ig, BIND);
XLA_FFI_DEFINE_HANDLER_SYMBOL(CnnzooOnednnConvKernelGrad, Kg, BIND);
