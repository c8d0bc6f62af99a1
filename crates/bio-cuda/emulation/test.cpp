#include "prelude.h"
#include KERNELS_CU
#include <cstdio>
#include <cstdlib>
#include <random>
#include <algorithm>
#include <cstdint>
#include <tuple>
static int failures = 0;
#define CHECK(c, ...) do { if (!(c)) { failures++; std::printf("FAIL %s:%d: ", __FILE__, __LINE__); std::printf(__VA_ARGS__); std::printf("\n"); } } while (0)
static unsigned int pow2_clamp(unsigned long long c) { unsigned long long p = 1; while (p < c) p <<= 1; return (unsigned int)std::clamp<unsigned long long>(p, 32, 256); }
static dim3 rows_cfg_block(u64 cols) { return dim3{pow2_clamp(cols), 1, 1}; }
static uint32_t key(float x) { uint32_t u; std::memcpy(&u, &x, 4); return (u & 0x80000000u) ? ~u : (u | 0x80000000u); }
static bool same(float a, float b) { return (std::isnan(a) && std::isnan(b)) || a == b; }
std::mt19937 rng(1);
static std::vector<float> randvec(size_t n, bool ties) {
    std::uniform_real_distribution<float> u(-2, 2);
    const float vals[] = {-1.0f, 0.0f, 0.25f, 0.25f, 3.0f, -0.0f};
    std::vector<float> v(n);
    for (auto& x : v) x = ties ? vals[rng() % 6] : u(rng);
    return v;
}

// ---- the composed plasticity definition (bio_core::backend::plasticity), as the CUDA backend runs
// it: a chain of the emulated primitive kernels, with the pull from bio_sparse_matmul.
using V = std::vector<float>;
static const int U_ABS = 5, U_SQRT = 4, U_SQUARE = 7, U_RECIP = 8, U_SCALE = 9, U_EXP = 2, U_CLAMP = 12;
static const int B_MUL = 2, B_DIV = 3, B_GREATER = 6;
static V k_map(const V& a, int op, float p0 = 0, float p1 = 0) {
    V out(a.size()); launch(dim3{1,1,1}, dim3{64,1,1}, [&] { bio_map(out.data(), a.data(), a.size(), op, p0, p1); }); return out;
}
// b is rows×cols (same shape) or rows×1 (per row).
static V k_zip(const V& a, const V& b, u64 rows, u64 cols, int op) {
    bool per_row = b.size() == rows && cols != 1; u64 rs = per_row ? 1 : cols, cs = per_row ? 0 : 1;
    V out(a.size()); launch(dim3{1,1,1}, dim3{64,1,1}, [&] { bio_zip(out.data(), a.data(), b.data(), rows, cols, rs, cs, op); }); return out;
}
static V k_lincomb(float al, const V& a, float be, const V& b) {
    V out(a.size()); launch(dim3{1,1,1}, dim3{64,1,1}, [&] { bio_lincomb(out.data(), a.data(), b.data(), a.size(), al, be); }); return out;
}
static V k_rowsum(const V& a, u64 rows, u64 cols) {
    V out(rows); launch(dim3{(unsigned)std::min<u64>(rows, 2),1,1}, rows_cfg_block(cols), [&] { bio_reduce_rows(out.data(), a.data(), rows, cols, 0); }); return out;
}
static V row_norm(const V& t, u64 rows, u64 cols, bool l2) {
    return l2 ? k_map(k_rowsum(k_map(t, U_SQUARE), rows, cols), U_SQRT) : k_rowsum(k_map(t, U_ABS), rows, cols);
}
static V guard(const V& t) { return k_map(t, U_CLAMP, 1e-12f, 3.40282347e38f); }
static V sparse_pull(const V& rel, const V& pat, u64 batch, u64 rows, u64 cols) {
    V out(rows * cols);
    launch(dim3{(unsigned)std::min<u64>(rows, 2), 1, 1}, dim3{256,1,1}, [&] { bio_sparse_matmul(out.data(), rel.data(), pat.data(), rows, batch, cols, 1, rows); });
    return out;
}
static void composed_step(V& w, V& mask, const V& rel, const V& pat, const V& wins, u64 batch, u64 rows, u64 cols, unsigned flags,
                          float s, float unit, float fraction, float total) {
    bool l2 = flags & 1, sgn = flags & 2, additive = flags & 4;
    V pull = sparse_pull(rel, pat, batch, rows, cols);
    V magnitude = sgn ? k_map(w, U_ABS) : w;
    V normalized = k_zip(magnitude, guard(row_norm(magnitude, rows, cols, l2)), rows, cols, B_DIV);
    V delta = k_lincomb(s, pull, -s, k_zip(normalized, wins, rows, cols, B_MUL));
    if (!additive) w = k_zip(w, k_map(delta, U_EXP), rows, cols, B_MUL);
    else { w = k_lincomb(1.0f, w, unit, delta); w = k_zip(w, mask, rows, cols, B_MUL); }
    if (flags & 8) {
        V mag = k_map(w, U_ABS);
        V present = guard(k_rowsum(mask, rows, cols));
        V mean = k_zip(k_rowsum(mag, rows, cols), present, rows, 1, B_DIV);
        V keep = k_zip(mag, k_map(mean, U_SCALE, fraction), rows, cols, B_GREATER);
        mask = k_zip(mask, keep, rows, cols, B_MUL);
        w = k_zip(w, mask, rows, cols, B_MUL);
    }
    if (flags & 16) {
        V factor = k_map(k_map(guard(row_norm(w, rows, cols, l2)), U_RECIP), U_SCALE, total);
        w = k_zip(w, factor, rows, cols, B_MUL);
    }
}
static V randu(size_t n, float lo, float hi) {
    std::uniform_real_distribution<float> u(lo, hi); V v(n);
    for (auto& x : v) x = u(rng);
    return v;
}
static V sparse_rand(size_t n, double density) {
    std::bernoulli_distribution on(density); std::uniform_real_distribution<float> u(0, 1); V v(n);
    for (auto& x : v) x = on(rng) ? u(rng) : 0.0f;
    return v;
}

// ---- the host definitions of bio_core::backend::conv (conv.rs), transcribed loop for loop: the
// scatter forms of fold and of the max-pool gradient (out[...] += in window order), against which
// the gather kernels are held bit for bit.
struct Win {
    u64 h, w, c, k, s, p;
    u64 oh() const { return (h + 2 * p - k) / s + 1; }
    u64 ow() const { return (w + 2 * p - k) / s + 1; }
    u64 positions() const { return oh() * ow(); }
    u64 patch_len() const { return k * k * c; }
    u64 image_len() const { return h * w * c; }
    // Window::source: the input position of window entry (i, j) at output (oy, ox), or false.
    bool source(u64 oy, u64 ox, u64 i, u64 j, u64& y, u64& x) const {
        if (oy * s + i < p || ox * s + j < p) return false;
        y = oy * s + i - p; x = ox * s + j - p;
        return y < h && x < w;
    }
};
static void host_unfold_image(const Win& g, const float* image, float* out) {
    u64 c = g.c, k = g.k, ow = g.ow(), len = g.patch_len();
    for (u64 oy = 0; oy < g.oh(); ++oy) for (u64 ox = 0; ox < ow; ++ox) {
        float* patch = out + (oy * ow + ox) * len;
        for (u64 i = 0; i < k; ++i) for (u64 j = 0; j < k; ++j) {
            float* dst = patch + (i * k + j) * c; u64 y, x;
            if (g.source(oy, ox, i, j, y, x)) std::memcpy(dst, image + (y * g.w + x) * c, c * sizeof(float));
            else std::fill(dst, dst + c, 0.0f);
        }
    }
}
static void host_fold_image(const Win& g, const float* cols, float* out) {
    u64 c = g.c, k = g.k, ow = g.ow(), len = g.patch_len();
    std::fill(out, out + g.image_len(), 0.0f);
    for (u64 oy = 0; oy < g.oh(); ++oy) for (u64 ox = 0; ox < ow; ++ox) {
        const float* patch = cols + (oy * ow + ox) * len;
        for (u64 i = 0; i < k; ++i) for (u64 j = 0; j < k; ++j) { u64 y, x;
            if (g.source(oy, ox, i, j, y, x)) for (u64 ch = 0; ch < c; ++ch) out[(y * g.w + x) * c + ch] += patch[(i * k + j) * c + ch];
        }
    }
}
static void host_pool_argmax(const Win& g, const float* image, u64 oy, u64 ox, std::vector<u64>& best) {
    const u64 NONE = ~0ull;
    std::fill(best.begin(), best.end(), NONE);
    for (u64 i = 0; i < g.k; ++i) for (u64 j = 0; j < g.k; ++j) { u64 y, x;
        if (g.source(oy, ox, i, j, y, x)) { u64 base = (y * g.w + x) * g.c;
            for (u64 ch = 0; ch < g.c; ++ch) if (best[ch] == NONE || image[base + ch] > image[best[ch]]) best[ch] = base + ch; }
    }
}
static void host_max_pool_image(const Win& g, const float* image, float* out) {
    u64 c = g.c, k = g.k, ow = g.ow();
    auto span = [&](u64 o, u64 size) { u64 first = o * g.s; return std::pair<u64,u64>{first > g.p ? first - g.p : 0, std::min(first + k > g.p ? first + k - g.p : 0, size)}; };
    for (u64 oy = 0; oy < g.oh(); ++oy) { auto [y0, y1] = span(oy, g.h);
        for (u64 ox = 0; ox < ow; ++ox) { auto [x0, x1] = span(ox, g.w);
            float* dst = out + (oy * ow + ox) * c;
            std::memcpy(dst, image + (y0 * g.w + x0) * c, c * sizeof(float));
            for (u64 y = y0; y < y1; ++y) for (u64 x = x0; x < x1; ++x) if (y != y0 || x != x0)
                for (u64 ch = 0; ch < c; ++ch) { float v = image[(y * g.w + x) * c + ch]; dst[ch] = v > dst[ch] ? v : dst[ch]; }
        }
    }
}
static void host_max_pool_backward_image(const Win& g, const float* image, const float* grad, float* out) {
    u64 c = g.c, ow = g.ow(); std::vector<u64> best(c);
    std::fill(out, out + g.image_len(), 0.0f);
    for (u64 oy = 0; oy < g.oh(); ++oy) for (u64 ox = 0; ox < ow; ++ox) {
        host_pool_argmax(g, image, oy, ox, best);
        for (u64 ch = 0; ch < c; ++ch) out[best[ch]] += grad[(oy * ow + ox) * c + ch];
    }
}
static bool bits_eq(float a, float b) { uint32_t x, y; std::memcpy(&x, &a, 4); std::memcpy(&y, &b, 4); return x == y; }

int main() {
    // ---- sparse_matmul: against the host sum over the non-zeros of op(a), k ascending (bio-cpu's
    // order, bit for bit), and a 0·∞ / 0·NaN in b facing a zero of a contributes nothing.
    for (auto [m, k, n] : std::vector<std::tuple<u64,u64,u64>>{{1,1,1},{3,5,7},{7,300,13},{2,100,1100},{3,600,37},{2,40,2049}})
    for (double density : {0.05, 0.5, 0.0}) for (int trans = 0; trans < 2; ++trans) {
        V a = sparse_rand(m * k, density);            // op(a) m×k, stored m×k or k×m (transposed)
        if (m > 1) for (u64 kk = 0; kk < k; ++kk) a[kk] = 0.0f;   // a zero row
        V b = randu(k * n, -1, 1);
        u64 zk = k; for (u64 kk = 0; kk < k; ++kk) if (a[kk] == 0.0f) { zk = kk; break; }
        if (zk < k) { b[zk * n] = INFINITY; if (n > 1) b[zk * n + 1] = NAN; }
        V stored(m * k);
        for (u64 i = 0; i < m; ++i) for (u64 kk = 0; kk < k; ++kk) (trans ? stored[kk * m + i] : stored[i * k + kk]) = a[i * k + kk];
        V out(m * n, 12345.0f);
        unsigned gy = (unsigned)std::min<u64>((n + 1023) / 1024, 2);
        launch(dim3{(unsigned)std::min<u64>(m, 3), gy, 1}, dim3{256,1,1}, [&] {
            bio_sparse_matmul(out.data(), stored.data(), b.data(), m, k, n, trans ? 1 : k, trans ? m : 1); });
        for (u64 i = 0; i < m; ++i) for (u64 c = 0; c < n; ++c) {
            float acc = 0.0f;
            for (u64 kk = 0; kk < k; ++kk) { float v = a[i * k + kk]; if (v != 0.0f) acc += v * b[kk * n + c]; }
            CHECK(same(out[i * n + c], acc) && (i > 0 || m == 1 || out[c] == 0.0f), "sparse_matmul %llux%llux%llu trans=%d density=%g (%llu,%llu) got %g want %g",
                  m, k, n, trans, density, i, c, out[i * n + c], acc);
        }
    }
    // ---- plasticity_step: the fused kernel against the composed definition, bit for bit (same
    // operations, same order, reductions with the same block size); masks exactly.
    {
        const std::vector<std::tuple<u64,u64,u64>> shapes = {{1,1,16},{1,37,16},{37,1,16},{7,13,300},{30,257,16},{5,784,100}};
        int case_no = 0, checked = 0;
        for (unsigned flags = 0; flags < 32; ++flags) {
            auto [rows, cols, batch] = shapes[flags % shapes.size()];
            bool sgn = flags & 2;
            V mask(rows * cols); for (auto& x : mask) x = rng() % 10 == 0 ? 0.0f : 1.0f;
            V w0 = randu(rows * cols, sgn ? -1.0f : 0.0f, 1.0f);
            for (u64 i = 0; i < w0.size(); ++i) w0[i] *= mask[i];
            V wf = w0, mf = mask, wc = w0, mc = mask;
            ++case_no;
            for (int t = 1; t <= 2; ++t) {
                V rel = sparse_rand(batch * rows, case_no % 2 ? 0.05 : 0.5);
                V pat = randu(batch * cols, 0, 1);
                V wins = randu(rows, 0, 2); if (rows > 2) wins[1] = 0.0f;
                float s = 0.3f, unit = 0.5f, fraction = (flags & 16) ? 0.3f : 0.5f, total = (flags & 8) ? 1.0f : 2.0f;
                launch(dim3{(unsigned)std::min<u64>(rows, 3),1,1}, rows_cfg_block(cols), [&] {
                    bio_plasticity_step(wf.data(), mf.data(), rel.data(), pat.data(), wins.data(), rows, cols, batch, flags, s, unit, fraction, total); });
                composed_step(wc, mc, rel, pat, wins, batch, rows, cols, flags, s, unit, fraction, total);
                for (u64 i = 0; i < rows * cols; ++i) {
                    CHECK(same(wf[i], wc[i]), "plasticity flags=%u %llux%llu step %d w[%llu] fused %.9g composed %.9g", flags, rows, cols, t, i, wf[i], wc[i]);
                    CHECK(mf[i] == mc[i], "plasticity flags=%u %llux%llu step %d mask[%llu] fused %g composed %g", flags, rows, cols, t, i, mf[i], mc[i]);
                    ++checked;
                }
            }
        }
        std::printf("plasticity_step: %d configurations, %d weights compared\n", case_no, checked);
    }
    // ---- kth largest
    for (u64 cols : {1ull, 2ull, 5ull, 37ull, 300ull, 1000ull}) for (bool ties : {false, true}) {
        u64 rows = 5;
        auto a = randvec(rows * cols, ties);
        if (cols > 3) { a[1] = NAN; a[2] = INFINITY; a[3] = -INFINITY; a[cols + 1] = -0.0f; }
        std::vector<u64> ks = {1, (cols + 1) / 2, cols};
        for (u64 k : ks) {
            std::vector<float> out(rows, 12345.0f);
            for (unsigned g : {1u, 2u, (unsigned)rows}) {
                launch(dim3{g,1,1}, rows_cfg_block(cols), [&] { bio_kth_largest_rows(out.data(), a.data(), rows, cols, k); });
                for (u64 r = 0; r < rows; ++r) {
                    std::vector<float> row(a.begin() + r * cols, a.begin() + (r + 1) * cols);
                    std::sort(row.begin(), row.end(), [](float x, float y) { return key(x) > key(y); });
                    uint32_t gb, wb; std::memcpy(&gb, &out[r], 4); std::memcpy(&wb, &row[k - 1], 4);
                    CHECK(gb == wb, "kth cols=%llu k=%llu row=%llu ties=%d got %g want %g", cols, k, r, ties, out[r], row[k-1]);
                }
            }
        }
    }
    // ---- argmax
    for (u64 cols : {1ull, 3ull, 37ull, 300ull}) for (int mode = 0; mode < 3; ++mode) {
        u64 rows = 6;
        auto a = randvec(rows * cols, mode == 1);
        if (mode == 2) { for (u64 r = 0; r < rows; ++r) for (u64 j = 0; j < cols; ++j) a[r*cols+j] = (j % 4 == 1) ? NAN : a[r*cols+j]; a[0] = NAN; }
        std::vector<unsigned int> out(rows, 999);
        launch(dim3{2,1,1}, rows_cfg_block(cols), [&] { bio_argmax_rows(out.data(), a.data(), rows, cols); });
        for (u64 r = 0; r < rows; ++r) {
            const float* row = &a[r * cols]; u64 best = 0;
            for (u64 j = 0; j < cols; ++j) if (row[j] > row[best]) best = j;
            CHECK(out[r] == best, "argmax cols=%llu mode=%d row=%llu got %u want %llu", cols, mode, r, out[r], best);
        }
    }
    // ---- reductions
    for (auto [rows, cols] : std::vector<std::pair<u64,u64>>{{1,1},{1,37},{37,1},{7,13},{130,257},{1,5000},{3000,1},{40,300}}) {
        auto a = randvec(rows * cols, false);
        for (int op = 0; op < 4; ++op) {
            auto fold = [&](auto idx, u64 n) { double acc = op==2 ? -INFINITY : op==3 ? INFINITY : 0.0, sabs = 0;
                for (u64 t = 0; t < n; ++t) { double v = a[idx(t)]; sabs += std::fabs(v); acc = op==2 ? std::fmax(acc,v) : op==3 ? std::fmin(acc,v) : acc+v; }
                if (op == 1) { acc /= n; sabs /= n; } return std::pair<float,double>{(float)acc, sabs}; };
            auto cmp = [&](const char* what, float got, std::pair<float,double> want, u64 i) {
                if (op >= 2) CHECK(got == want.first, "%s op=%d %llux%llu [%llu] got %g want %g", what, op, rows, cols, i, got, want.first);
                else CHECK(std::fabs(got - want.first) <= 1e-6 + 1e-5 * want.second, "%s op=%d %llux%llu [%llu] got %.9g want %.9g", what, op, rows, cols, i, got, want.first);
            };
            std::vector<float> pr(rows), pc(cols), all(1);
            launch(dim3{(unsigned)std::min<u64>(rows, 3),1,1}, rows_cfg_block(cols), [&] { bio_reduce_rows(pr.data(), a.data(), rows, cols, op); });
            for (u64 r = 0; r < rows; ++r) cmp("rows", pr[r], fold([&](u64 t){ return r*cols+t; }, cols), r);
            launch(dim3{(unsigned)std::min<u64>((cols+31)/32, 2),1,1}, dim3{32,16,1}, [&] { bio_reduce_cols(pc.data(), a.data(), rows, cols, op); });
            for (u64 j = 0; j < cols; ++j) cmp("cols", pc[j], fold([&](u64 t){ return t*cols+j; }, rows), j);
            launch(dim3{1,1,1}, rows_cfg_block(rows*cols), [&] { bio_reduce_rows(all.data(), a.data(), 1, rows*cols, op); });
            cmp("all", all[0], fold([&](u64 t){ return t; }, rows*cols), 0);
        }
    }
    // ---- softmax
    for (auto [rows, cols] : std::vector<std::pair<u64,u64>>{{1,1},{3,37},{5,300},{2,3}}) for (bool huge : {false, true}) {
        auto a = randvec(rows * cols, false);
        if (huge) for (auto& x : a) x = (rng() % 2 ? 1e4f : -1e4f) + x;
        std::vector<float> out(rows * cols);
        launch(dim3{2,1,1}, rows_cfg_block(cols), [&] { bio_softmax_rows(out.data(), a.data(), rows, cols); });
        for (u64 r = 0; r < rows; ++r) {
            float mx = -INFINITY; for (u64 j = 0; j < cols; ++j) mx = std::fmax(mx, a[r*cols+j]);
            std::vector<float> e(cols); double s = 0; for (u64 j = 0; j < cols; ++j) { e[j] = std::exp(a[r*cols+j]-mx); s += e[j]; }
            double tot = 0;
            for (u64 j = 0; j < cols; ++j) { float w = (float)(e[j]/s); float g = out[r*cols+j]; tot += g;
                CHECK(std::isfinite(g) && std::fabs(g-w) <= 1e-6 + 1e-5*std::fabs(w), "softmax %llux%llu (%llu,%llu) got %g want %g", rows, cols, r, j, g, w); }
            CHECK(std::fabs(tot - 1) <= 1e-5, "softmax row sum %g", tot);
        }
    }
    // ---- zip / zip_assign: the four broadcast forms
    for (auto [rows, cols] : std::vector<std::pair<u64,u64>>{{1,1},{7,13},{37,1},{1,37}}) for (int form = 0; form < 4; ++form) for (int op = 0; op < 7; ++op) {
        u64 br = form==0||form==1 ? rows : 1, bc = form==0||form==2 ? cols : 1;
        u64 rs = form==0 ? cols : form==1 ? 1 : 0, cs = form==0||form==2 ? 1 : 0;
        if (form == 0) { rs = bc; cs = 1; }
        auto a = randvec(rows*cols, true); auto b = randvec(br*bc, true);
        for (auto& x : b) if (op == 3 && x == 0) x = 0.5f;
        std::vector<float> out(rows*cols), inplace = a;
        launch(dim3{2,1,1}, dim3{64,1,1}, [&] { bio_zip(out.data(), a.data(), b.data(), rows, cols, rs, cs, op); });
        launch(dim3{2,1,1}, dim3{64,1,1}, [&] { bio_zip_assign(inplace.data(), b.data(), rows, cols, rs, cs, op); });
        for (u64 i = 0; i < rows; ++i) for (u64 j = 0; j < cols; ++j) {
            float x = a[i*cols+j], y = b[(br==1?0:i)*bc + (bc==1?0:j)];
            float w = op==0?x+y: op==1?x-y: op==2?x*y: op==3?x/y: op==4?std::fmax(x,y): op==5?std::fmin(x,y): (x>y?1.f:0.f);
            CHECK(same(out[i*cols+j], w) && same(inplace[i*cols+j], w), "zip op=%d form=%d (%llu,%llu)", op, form, i, j);
        }
    }
    // ---- map, lincomb, fill, adam, momentum
    {
        u64 n = 1000; auto a = randvec(n, false); for (auto& x : a) x = std::fabs(x) + 0.05f; a[0] = 0; a[1] = -0.5f;
        std::vector<float> out(n);
        for (int op = 0; op <= 12; ++op) {
            launch(dim3{3,1,1}, dim3{256,1,1}, [&] { bio_map(out.data(), a.data(), n, op, 0.5f, 1.25f); });
            for (u64 i = 0; i < n; ++i) { float x = a[i];
                float w = op==0?std::fmax(x,0.f): op==1?(x>0?1.f:0.f): op==2?std::exp(x): op==3?std::log(x): op==4?std::sqrt(x): op==5?std::fabs(x):
                          op==6?(x>0?1.f:x<0?-1.f:0.f): op==7?x*x: op==8?1.f/x: op==9?0.5f*x: op==10?x+0.5f: op==11?std::pow(x,0.5f): std::fmin(std::fmax(x,0.5f),1.25f);
                CHECK(same(out[i], w), "map op=%d x=%g got %g want %g", op, x, out[i], w); }
        }
        auto b = randvec(n, false);
        launch(dim3{1,1,1}, dim3{256,1,1}, [&] { bio_lincomb(out.data(), a.data(), b.data(), n, 0.5f, -2.0f); });
        for (u64 i = 0; i < n; ++i) CHECK(out[i] == 0.5f*a[i] + -2.0f*b[i], "lincomb");
        for (float v : {-0.0f, NAN, 1.5f}) { unsigned bits; std::memcpy(&bits, &v, 4);
            launch(dim3{2,1,1}, dim3{256,1,1}, [&] { bio_fill(out.data(), n, bits); });
            for (u64 i = 0; i < n; ++i) { unsigned gb; std::memcpy(&gb, &out[i], 4); CHECK(gb == bits, "fill"); } }
        std::vector<float> p = a, m(n, 0.1f), v(n, 0.2f), p2 = a, m2 = m, v2 = v;
        launch(dim3{2,1,1}, dim3{256,1,1}, [&] { bio_adam_step(p.data(), b.data(), m.data(), v.data(), n, 0.01f, 0.9f, 0.999f, 1e-8f); });
        for (u64 i = 0; i < n; ++i) { float gi = b[i]; float mi = 0.9f*m2[i] + (1.0f-0.9f)*gi; float vi = 0.999f*v2[i] + (1.0f-0.999f)*gi*gi;
            p2[i] -= 0.01f*mi/(std::sqrt(vi)+1e-8f); CHECK(p[i]==p2[i] && m[i]==mi && v[i]==vi, "adam %llu", i); }
        std::vector<float> q = a, mm(n, 0.3f);
        launch(dim3{2,1,1}, dim3{256,1,1}, [&] { bio_momentum_step(q.data(), b.data(), mm.data(), n, 0.05f, 0.9f); });
        for (u64 i = 0; i < n; ++i) { float mi = 0.9f*0.3f + b[i]; CHECK(mm[i]==mi && q[i]==a[i]-0.05f*mi, "momentum"); }
    }

    // ---- conv: unfold, fold, max_pool, max_pool_backward against the host definitions above, bit
    // for bit (unfold and max_pool copy values; the two gathers add in the host's order). Windows
    // cover kernel sides 1..5, strides 1..3 (also above k, which leaves pixels no window reads),
    // padding 0..2 (borders), non-square maps, 1..4 channels; the pooling inputs hold ties (drawn
    // from a few values with ±0 and NaN, and three deterministic tie images) so the first-maximum
    // rule decides.
    {
        const std::vector<Win> windows = {
            {1, 1, 1, 1, 1, 0}, {5, 4, 3, 3, 1, 1}, {7, 6, 2, 4, 2, 1}, {9, 9, 1, 3, 3, 0}, {28, 28, 1, 5, 1, 2},
            {14, 14, 3, 4, 2, 1}, {8, 8, 3, 4, 2, 1}, {7, 5, 2, 3, 3, 2}, {5, 6, 4, 2, 1, 0}, {6, 9, 2, 5, 2, 2},
            {4, 7, 1, 1, 2, 0}, {9, 7, 2, 2, 3, 0}, {3, 11, 3, 5, 1, 2}, {10, 3, 1, 3, 2, 1}};
        const float pool_values[] = {0.0f, -0.0f, 0.5f, 0.5f, -1.0f, NAN, 2.0f, 0.5f};
        int entries = 0;
        for (const Win& g : windows) for (u64 batch : {1ull, 3ull}) {
            const u64 in_n = batch * g.image_len(), cols_n = batch * g.positions() * g.patch_len(), pool_n = batch * g.positions() * g.c;
            const unsigned grid = 3, block = 64;   // grid-strided: every entry, whatever the grid
            V x = randu(in_n, -1, 1);
            V got(cols_n, 12345.0f), want(cols_n);
            launch(dim3{grid,1,1}, dim3{block,1,1}, [&] { bio_unfold(got.data(), x.data(), batch, g.h, g.w, g.c, g.k, g.s, g.p); });
            for (u64 n = 0; n < batch; ++n) host_unfold_image(g, &x[n * g.image_len()], &want[n * g.positions() * g.patch_len()]);
            for (u64 i = 0; i < cols_n; ++i) CHECK(bits_eq(got[i], want[i]), "unfold %llux%llux%llu k%llu s%llu p%llu batch %llu [%llu] got %g want %g",
                g.h, g.w, g.c, g.k, g.s, g.p, batch, i, got[i], want[i]);
            V cols = randu(cols_n, -1, 1);
            V fgot(in_n, 12345.0f), fwant(in_n);
            launch(dim3{grid,1,1}, dim3{block,1,1}, [&] { bio_fold(fgot.data(), cols.data(), batch, g.h, g.w, g.c, g.k, g.s, g.p); });
            for (u64 n = 0; n < batch; ++n) host_fold_image(g, &cols[n * g.positions() * g.patch_len()], &fwant[n * g.image_len()]);
            for (u64 i = 0; i < in_n; ++i) CHECK(bits_eq(fgot[i], fwant[i]), "fold %llux%llux%llu k%llu s%llu p%llu batch %llu [%llu] got %.9g want %.9g",
                g.h, g.w, g.c, g.k, g.s, g.p, batch, i, fgot[i], fwant[i]);
            // The pooling inputs: a few values drawn at random (ties, ±0, NaN), then three whose ties
            // decide by construction: every entry 0.5 (each window's gradient goes to its first
            // position), and +0 where the first window holding two map positions starts with -0
            // everywhere else, and the reverse (that window's maximum is the zero it starts with).
            // A kernel keeping the last maximum (>=) fails these for every window with two positions.
            u64 at = 0;
            {
                auto span = [&](u64 o, u64 size) { u64 first = o * g.s; return std::pair<u64,u64>{first > g.p ? first - g.p : 0, std::min(first + g.k > g.p ? first + g.k - g.p : 0, size)}; };
                bool found = false;
                for (u64 oy = 0; oy < g.oh() && !found; ++oy) for (u64 ox = 0; ox < g.ow() && !found; ++ox) {
                    auto [y0, y1] = span(oy, g.h); auto [x0, x1] = span(ox, g.w);
                    if ((y1 - y0) * (x1 - x0) >= 2) { at = y0 * g.w + x0; found = true; }
                }
            }
            V drawn(in_n), flat(in_n, 0.5f), pos_first(in_n, -0.0f), neg_first(in_n, 0.0f);
            for (u64 i = 0; i < in_n; ++i) drawn[i] = pool_values[(i * 7 + i / 3 + rng() % 2) % 8];
            for (u64 n = 0; n < batch; ++n) for (u64 ch = 0; ch < g.c; ++ch) {
                pos_first[(n * g.h * g.w + at) * g.c + ch] = 0.0f; neg_first[(n * g.h * g.w + at) * g.c + ch] = -0.0f;
            }
            const std::pair<const char*, const V*> pool_inputs[] = {{"drawn", &drawn}, {"all 0.5", &flat}, {"+0 at a window start", &pos_first}, {"-0 at a window start", &neg_first}};
            for (auto [what, pxp] : pool_inputs) {
                const V& px = *pxp;
                V pgot(pool_n, 12345.0f), pwant(pool_n);
                launch(dim3{grid,1,1}, dim3{block,1,1}, [&] { bio_max_pool(pgot.data(), px.data(), batch, g.h, g.w, g.c, g.k, g.s, g.p); });
                for (u64 n = 0; n < batch; ++n) host_max_pool_image(g, &px[n * g.image_len()], &pwant[n * g.positions() * g.c]);
                int pool_diff = 0; for (u64 i = 0; i < pool_n; ++i) pool_diff += !bits_eq(pgot[i], pwant[i]);
                CHECK(pool_diff == 0, "max_pool %llux%llux%llu k%llu s%llu p%llu batch %llu, %s: %d of %llu entries differ",
                    g.h, g.w, g.c, g.k, g.s, g.p, batch, what, pool_diff, pool_n);
                V grad = randu(pool_n, -1, 1);
                V bgot(in_n, 12345.0f), bwant(in_n);
                launch(dim3{grid,1,1}, dim3{block,1,1}, [&] { bio_max_pool_backward(bgot.data(), px.data(), grad.data(), batch, g.h, g.w, g.c, g.k, g.s, g.p); });
                for (u64 n = 0; n < batch; ++n) host_max_pool_backward_image(g, &px[n * g.image_len()], &grad[n * g.positions() * g.c], &bwant[n * g.image_len()]);
                int back_diff = 0; for (u64 i = 0; i < in_n; ++i) back_diff += !bits_eq(bgot[i], bwant[i]);
                CHECK(back_diff == 0, "max_pool_backward %llux%llux%llu k%llu s%llu p%llu batch %llu, %s: %d of %llu entries differ",
                    g.h, g.w, g.c, g.k, g.s, g.p, batch, what, back_diff, in_n);
                entries += (int)(pool_n + in_n);
            }
            entries += (int)(cols_n + in_n);
        }
        std::printf("unfold/fold/max_pool/max_pool_backward: %zu windows × 2 batches, %d entries compared\n", windows.size(), entries);
    }
    // ---- the fused per-position kernels: bit for bit against the composed chain of the emulated
    // kernels (the CUDA backend's defaults), and against the host definitions (exactly for k-WTA,
    // the peak and the count; within 1e-6 relative for the unit-L2 rows, whose f64 sum the host
    // forms sequentially, the kernel per thread then as a tree).
    {
        const int U_RELU = 0, U_STEP = 1, B_SUB = 1;
        int compared = 0, l2_identical = 0, l2_total = 0;
        for (auto [rows, cols] : std::vector<std::pair<u64,u64>>{{1,1},{3,37},{5,300},{7,1},{13,96},{2,1000},{4,257}})
        for (int mode = 0; mode < 3; ++mode) {
            V x = mode == 0 ? randu(rows * cols, -2, 2) : randvec(rows * cols, true);
            if (mode == 2) for (u64 r = 0; r < rows; r += 2) for (u64 j = 0; j < cols; ++j) x[r * cols + j] = r % 4 == 0 ? 0.0f : -0.5f;
            const unsigned grid = (unsigned)std::min<u64>(rows, 3);
            const dim3 block = rows_cfg_block(cols);
            // kwta_rows
            std::vector<u64> ks = {1, (cols + 1) / 2, cols};
            for (u64 k : ks) {
                V theta(rows, 12345.0f), act(rows * cols, 12345.0f), theta_c(rows);
                launch(dim3{grid,1,1}, block, [&] { bio_kwta_rows(theta.data(), act.data(), x.data(), rows, cols, k); });
                launch(dim3{grid,1,1}, block, [&] { bio_kth_largest_rows(theta_c.data(), x.data(), rows, cols, k); });
                V act_c = k_map(k_zip(x, theta_c, rows, cols, B_SUB), U_RELU);
                for (u64 r = 0; r < rows; ++r) {
                    std::vector<float> row(x.begin() + r * cols, x.begin() + (r + 1) * cols);
                    std::sort(row.begin(), row.end(), [](float a, float b) { return key(a) > key(b); });
                    CHECK(bits_eq(theta[r], theta_c[r]) && bits_eq(theta[r], row[k - 1]), "kwta %llux%llu mode %d k=%llu theta[%llu] got %g chain %g host %g",
                          rows, cols, mode, k, r, theta[r], theta_c[r], row[k - 1]);
                    for (u64 j = 0; j < cols; ++j) { float a = act[r * cols + j], want = std::fmax(x[r * cols + j] - row[k - 1], 0.0f);
                        CHECK(bits_eq(a, act_c[r * cols + j]) && a == want, "kwta %llux%llu mode %d k=%llu act(%llu,%llu) got %g chain %g host %g",
                              rows, cols, mode, k, r, j, a, act_c[r * cols + j], want); ++compared; }
                }
            }
            // relative_to_row_max, of the activity (relu) and of the signed rows
            for (int signed_rows = 0; signed_rows < 2; ++signed_rows) {
                V y = signed_rows ? x : k_map(x, U_RELU);
                V got(rows * cols, 12345.0f), peak(rows);
                launch(dim3{grid,1,1}, block, [&] { bio_relative_to_row_max(got.data(), y.data(), rows, cols); });
                launch(dim3{grid,1,1}, block, [&] { bio_reduce_rows(peak.data(), y.data(), rows, cols, 2); });
                V chain = k_zip(y, guard(peak), rows, cols, B_DIV);
                for (u64 r = 0; r < rows; ++r) {
                    double m = -INFINITY; for (u64 j = 0; j < cols; ++j) m = std::fmax(m, (double)y[r * cols + j]);
                    float g = std::fmin(std::fmax((float)m, 1e-12f), 3.40282347e38f);
                    for (u64 j = 0; j < cols; ++j) { float a = got[r * cols + j], want = y[r * cols + j] / g;
                        CHECK(bits_eq(a, chain[r * cols + j]) && bits_eq(a, want), "relative_to_row_max %llux%llu mode %d signed %d (%llu,%llu) got %g chain %g host %g",
                              rows, cols, mode, signed_rows, r, j, a, chain[r * cols + j], want); ++compared; }
                }
            }
            // unit_l2_rows
            {
                V got(rows * cols, 12345.0f);
                launch(dim3{grid,1,1}, block, [&] { bio_unit_l2_rows(got.data(), x.data(), rows, cols); });
                V chain = k_zip(x, guard(k_map(k_rowsum(k_map(x, U_SQUARE), rows, cols), U_SQRT)), rows, cols, B_DIV);
                for (u64 r = 0; r < rows; ++r) {
                    double sum = 0; for (u64 j = 0; j < cols; ++j) { float v = x[r * cols + j]; sum += (double)(v * v); }
                    float norm = std::fmin(std::fmax(std::sqrt((float)sum), 1e-12f), 3.40282347e38f);
                    for (u64 j = 0; j < cols; ++j) { float a = got[r * cols + j], want = x[r * cols + j] / norm;
                        CHECK(bits_eq(a, chain[r * cols + j]), "unit_l2_rows %llux%llu mode %d (%llu,%llu) got %.9g chain %.9g", rows, cols, mode, r, j, a, chain[r * cols + j]);
                        CHECK(std::fabs(a - want) <= 1e-6f * std::fabs(want), "unit_l2_rows %llux%llu mode %d (%llu,%llu) got %.9g host %.9g", rows, cols, mode, r, j, a, want);
                        l2_identical += bits_eq(a, want); ++l2_total; ++compared; }
                }
            }
            // fraction_positive: the count kernel, then count / n in double rounded once
            {
                V y = x; for (u64 i = 0; i < y.size(); i += 7) y[i] = NAN;
                const V step = k_map(y, U_STEP);
                for (unsigned g : {1u, 3u}) {
                    unsigned long long count = 0; V mean(1);
                    launch(dim3{g,1,1}, dim3{256,1,1}, [&] { bio_count_positive(&count, y.data(), y.size()); });
                    launch(dim3{1,1,1}, rows_cfg_block(y.size()), [&] { bio_reduce_rows(mean.data(), step.data(), 1, y.size(), 1); });
                    u64 want = 0; for (float v : y) want += v > 0.0f;
                    float frac = (float)((double)count / (double)y.size());
                    CHECK(count == want && bits_eq(frac, mean[0]), "count_positive %llux%llu mode %d grid %u: %llu (fraction %g, chain %g), host %llu",
                          rows, cols, mode, g, count, frac, mean[0], want);
                }
            }
        }
        std::printf("kwta_rows/relative_to_row_max/unit_l2_rows: %d entries compared; unit_l2_rows equals the host's sequential sum bit for bit in %d of %d\n",
                    compared, l2_identical, l2_total);
    }
    std::printf("%s (%d failures)\n", failures ? "FAILED" : "all emulated kernel checks passed", failures);
    return failures != 0;
}
