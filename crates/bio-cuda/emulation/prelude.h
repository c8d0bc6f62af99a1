// Host emulation of the CUDA subset the kernels use: blocks run one after another, the threads of a
// block are std::threads with a std::barrier for __syncthreads; __shared__ = function static.
#include <cmath>
#include <cstring>
#include <barrier>
#include <thread>
#include <vector>
#include <functional>
struct dim3 { unsigned int x = 1, y = 1, z = 1; };
inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;
inline std::barrier<>* g_barrier = nullptr;
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
inline void __syncthreads() { g_barrier->arrive_and_wait(); }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline float __uint_as_float(unsigned int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline unsigned int __float_as_uint(float f) { unsigned int i; std::memcpy(&i, &f, 4); return i; }
inline double __longlong_as_double(long long i) { double d; std::memcpy(&d, &i, 8); return d; }
inline unsigned int atomicAdd(unsigned int* p, unsigned int v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
using std::fmax; using std::fmin;
template <typename F> void launch(dim3 grid, dim3 block, F kernel) {
    gridDim = grid; blockDim = block;
    unsigned int nthreads = block.x * block.y;
    for (unsigned int by = 0; by < grid.y; ++by) for (unsigned int b = 0; b < grid.x; ++b) {
        std::barrier<> bar(nthreads);
        g_barrier = &bar;
        std::vector<std::thread> ts;
        for (unsigned int t = 0; t < nthreads; ++t)
            ts.emplace_back([=] { blockIdx = dim3{b, by, 0}; threadIdx = dim3{t % block.x, t / block.x, 0}; kernel(); });
        for (auto& t : ts) t.join();
    }
}
