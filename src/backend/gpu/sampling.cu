// The sampler chain on the GPU, one block per logits row (see sampling.h; the reference is
// src/sampling/sampler.cpp). Candidates are never sorted wholesale: tokens fall into kBuckets histogram buckets
// by their distance from the largest logit (the bucket index never decreases along the chain's order), the
// running count or probability mass over the buckets finds the one bucket where a cut falls (the k-th best, the
// top-p crossing, the draw), and only that bucket's tokens are sorted in shared memory.
#include <cmath>
#include <cstdint>

#include "backend/gpu/sampling.h"

namespace rf::gpu {
namespace {

constexpr int kThreads = 1024;  // a multiple of both wavefront sizes
constexpr int kBuckets = 2048;
constexpr int kCap = kSampleSortCapacity;
// Probability masses are summed as integers of 2^-62 (exact, order-independent sums; every mass here is < 4).
constexpr double kFixScale = 4611686018427387904.0;  // 2^62
using Fix = unsigned long long;

RF_DEVICE Fix to_fix(float p) { return static_cast<Fix>(static_cast<double>(p) * kFixScale); }
RF_DEVICE double from_fix(Fix v) { return static_cast<double>(v) / kFixScale; }

// The chain's order: higher logit first, then lower id.
RF_DEVICE bool better(float la, int ia, float lb, int ib) { return la > lb || (la == lb && ia < ib); }

struct RowState {
  const float* l;  // the (penalised) logits
  int n;
  float mx;     // the largest logit
  float scale;  // buckets per logit unit
  float t;      // temperature
  double sum;   // softmax denominator
};

RF_DEVICE int bucket_of(const RowState& s, float l) {
  const float key = (s.mx - l) * s.scale;
  return key < static_cast<float>(kBuckets - 1) ? static_cast<int>(key) : kBuckets - 1;
}

// The bucket of l within its bucket b (kBuckets finer steps; also non-decreasing along the chain's order).
RF_DEVICE int sub_bucket_of(const RowState& s, float l, int b) {
  const float key = ((s.mx - l) * s.scale - static_cast<float>(b)) * static_cast<float>(kBuckets);
  return key < static_cast<float>(kBuckets - 1) ? static_cast<int>(key) : kBuckets - 1;
}

// The probability of a logit as the CPU computes it: float(exp((l - mx) / t) / sum).
RF_DEVICE float prob_of(const RowState& s, float l) {
  const float e = expf(__fdiv_rn(__fsub_rn(l, s.mx), s.t));
  return static_cast<float>(static_cast<double>(e) / s.sum);
}

template <typename T>
RF_DEVICE T block_min(T v, T* scratch) {
  v = -v;
  return -block_reduce_max(v, scratch);
}

// Warp 0: the first bucket b whose running total through b (hist summed in bucket order) `reaches`; writes it and
// the total before it. *bucket = -1 when none does.
template <typename T, typename Reach>
RF_DEVICE void find_bucket(const T* hist, Reach reaches, int* bucket, T* before) {
  if (warp_id() != 0) return;
  const int lane = lane_id();
  constexpr int kPer = kBuckets / kWarpSize;
  T local = 0;
  for (int b = lane * kPer; b < (lane + 1) * kPer; ++b) local += hist[b];
  T incl = local;
  for (int off = 1; off < kWarpSize; off <<= 1) {
    const T o = shfl(incl, lane >= off ? lane - off : lane);
    if (lane >= off) incl += o;
  }
  const T excl = incl - local;
  if (lane == 0) *bucket = -1;
  warp_sync();
  if (reaches(incl) && (lane == 0 || !reaches(excl))) {
    T cum = excl;
    for (int b = lane * kPer; b < (lane + 1) * kPer; ++b) {
      if (reaches(cum + hist[b])) {
        *bucket = b;
        *before = cum;
        break;
      }
      cum += hist[b];
    }
  }
}

// Sorts s_key / s_id [0, n) into the chain's order (bitonic, padded with sentinels that sort last).
RF_DEVICE void sort_candidates(float* key, int* id, int n) {
  int p = 1;
  while (p < n) p <<= 1;
  for (int i = n + static_cast<int>(threadIdx.x); i < p; i += blockDim.x) {
    key[i] = -INFINITY;
    id[i] = 0x7fffffff;
  }
  __syncthreads();
  for (int k = 2; k <= p; k <<= 1) {
    for (int j = k >> 1; j > 0; j >>= 1) {
      for (int i = static_cast<int>(threadIdx.x); i < p; i += blockDim.x) {
        const int o = i ^ j;
        if (o <= i) continue;
        const bool first = (i & k) == 0;  // this pair ends in chain order, else reversed
        const bool swap = first ? better(key[o], id[o], key[i], id[i]) : better(key[i], id[i], key[o], id[o]);
        if (swap) {
          const float tk = key[i];
          key[i] = key[o];
          key[o] = tk;
          const int ti = id[i];
          id[i] = id[o];
          id[o] = ti;
        }
      }
      __syncthreads();
    }
  }
}

// Gathers the tokens of bucket `b` with keep(i, l) into key / id (at most kCap, which the caller checked), sorted.
// Returns their count.
template <typename Keep>
RF_DEVICE int gather_bucket(const RowState& s, int b, Keep keep, float* key, int* id, int* counter) {
  if (threadIdx.x == 0) *counter = 0;
  __syncthreads();
  for (int i = static_cast<int>(threadIdx.x); i < s.n; i += blockDim.x) {
    const float l = s.l[i];
    if (bucket_of(s, l) == b && keep(i, l)) {
      const int at = atomicAdd(counter, 1);
      key[at] = l;
      id[at] = i;
    }
  }
  __syncthreads();
  const int m = *counter;
  sort_candidates(key, id, m);
  return m;
}

__global__ void __launch_bounds__(kThreads)
    sample_rows_kernel(RowsF32 logits, const SampleRowArgs* __restrict__ rows, const int32_t* __restrict__ pen_ids,
                       const int32_t* __restrict__ pen_counts, float* __restrict__ scratch, int32_t* __restrict__ ids) {
  pdl_prologue();
  __shared__ int s_count[kBuckets];
  __shared__ Fix s_mass[kBuckets];
  __shared__ float s_key[kCap];
  __shared__ int s_id[kCap];
  __shared__ float s_redf[kMaxWarpsPerBlock];
  __shared__ int s_redi[kMaxWarpsPerBlock];
  __shared__ double s_redd[kMaxWarpsPerBlock];
  __shared__ int s_bucket, s_counter, s_int_before;
  __shared__ Fix s_fix_before;
  __shared__ float s_last_l;
  __shared__ int s_last_id;

  const SampleRowArgs a = rows[blockIdx.x];
  const int n = static_cast<int>(logits.ne0);
  const int tid = static_cast<int>(threadIdx.x);
  const float* l = logits.data + static_cast<int64_t>(a.row) * logits.stride;
  if (a.pen_count > 0) {  // a penalised copy: l / p if l > 0, else l * p; minus count * frequency + presence
    float* w = scratch + static_cast<int64_t>(blockIdx.x) * n;
    for (int i = tid; i < n; i += blockDim.x) w[i] = l[i];
    __syncthreads();
    for (int j = tid; j < a.pen_count; j += blockDim.x) {
      const int id = pen_ids[a.pen_first + j];
      float v = w[id];
      v = v > 0.0f ? __fdiv_rn(v, a.repeat_penalty) : __fmul_rn(v, a.repeat_penalty);
      const float sub = __fadd_rn(__fmul_rn(static_cast<float>(pen_counts[a.pen_first + j]), a.frequency_penalty),
                                  a.presence_penalty);
      w[id] = __fsub_rn(v, sub);
    }
    __syncthreads();
    l = w;
  }

  // The largest logit and its first index (the CPU's first_max), and the smallest logit.
  float mx = -INFINITY, mn = INFINITY;
  for (int i = tid; i < n; i += blockDim.x) {
    mx = fmaxf(mx, l[i]);
    mn = fminf(mn, l[i]);
  }
  mx = block_reduce_max(mx, s_redf);
  mn = block_min(mn, s_redf);
  int first = n;
  for (int i = tid; i < n && first == n; i += blockDim.x) {
    if (l[i] == mx) first = i;
  }
  first = block_min(first, s_redi);
  const int best = first < n ? first : 0;
  if (a.temperature <= 0.0f) {
    if (tid == 0) ids[blockIdx.x] = best;
    return;
  }

  RowState s{l, n, mx, 0.0f, a.temperature, 0.0};
  const float span = mx - mn;
  if (span > 0.0f && span < INFINITY) {
    s.scale = static_cast<float>(kBuckets - 1) / span;
  } else if (span > 0.0f) {
    s.scale = static_cast<float>(kBuckets - 1) / (64.0f * a.temperature);  // -inf logits: the far ones share a bucket
  }
  auto on_host = [&] {
    if (tid == 0) ids[blockIdx.x] = kSampleOnHost;
  };

  if (a.top_k > 0 && a.top_k < n) {
    // The k best: the bucket of the k-th from the counts; every token up to that bucket is sorted.
    for (int b = tid; b < kBuckets; b += blockDim.x) s_count[b] = 0;
    __syncthreads();
    for (int i = tid; i < n; i += blockDim.x) atomicAdd(&s_count[bucket_of(s, l[i])], 1);
    __syncthreads();
    const int k = a.top_k;
    find_bucket(
        s_count, [k](int c) { return c >= k; }, &s_bucket, &s_int_before);
    __syncthreads();
    const int bk = s_bucket;
    const int before = s_int_before;
    int sbk = kBuckets;                 // the k-th best's finer bucket within bk (kBuckets: all of bk)
    if (before + s_count[bk] > kCap) {  // too many to sort: count bk's tokens by finer buckets
      __syncthreads();
      for (int b = tid; b < kBuckets; b += blockDim.x) s_count[b] = 0;
      __syncthreads();
      for (int i = tid; i < n; i += blockDim.x) {
        if (bucket_of(s, l[i]) == bk) atomicAdd(&s_count[sub_bucket_of(s, l[i], bk)], 1);
      }
      __syncthreads();
      const int need = k - before;
      find_bucket(
          s_count, [need](int c) { return c >= need; }, &s_bucket, &s_int_before);
      __syncthreads();
      sbk = s_bucket;
      if (before + s_int_before + s_count[sbk] > kCap) return on_host();
    }
    if (tid == 0) s_counter = 0;
    __syncthreads();
    for (int i = tid; i < n; i += blockDim.x) {
      const int b = bucket_of(s, l[i]);
      if (b < bk || (b == bk && (sbk == kBuckets || sub_bucket_of(s, l[i], bk) <= sbk))) {
        const int at = atomicAdd(&s_counter, 1);
        s_key[at] = l[i];
        s_id[at] = i;
      }
    }
    __syncthreads();
    sort_candidates(s_key, s_id, s_counter);
    // softmax over the k (sorted: s_key[0] is the max), then top-p, min-p and the draw in order.
    float* p = reinterpret_cast<float*>(s_mass);  // the masses are not used on this path
    double part = 0.0;
    for (int j = tid; j < k; j += blockDim.x) {
      p[j] = expf(__fdiv_rn(__fsub_rn(s_key[j], mx), a.temperature));
      part += p[j];
    }
    const double sum = block_reduce_sum(part, s_redd);
    for (int j = tid; j < k; j += blockDim.x) p[j] = static_cast<float>(static_cast<double>(p[j]) / sum);
    __syncthreads();
    if (tid == 0) {
      int m = k;
      if (a.top_p < 1.0f) {
        double cum = 0.0;
        for (int j = 0; j < k; ++j) {
          cum += p[j];
          if (cum >= a.top_p) {
            m = j + 1;
            break;
          }
        }
      }
      if (a.min_p > 0.0f) {
        const float threshold = a.min_p * p[0];
        int kept = 1;
        while (kept < m && p[kept] >= threshold) ++kept;
        m = kept;
      }
      double total = 0.0;
      for (int j = 0; j < m; ++j) total += p[j];
      const double r = a.u * total;
      int pick = m - 1;
      double cum = 0.0;
      for (int j = 0; j < m; ++j) {
        cum += p[j];
        if (cum > r) {
          pick = j;
          break;
        }
      }
      ids[blockIdx.x] = s_id[pick];
    }
    return;
  }

  // The whole vocabulary: softmax denominator, then the top-p cut and the draw through the bucket masses.
  double part = 0.0;
  for (int i = tid; i < n; i += blockDim.x) part += expf(__fdiv_rn(__fsub_rn(l[i], mx), a.temperature));
  s.sum = block_reduce_sum(part, s_redd);
  const float threshold = a.min_p > 0.0f ? a.min_p * static_cast<float>(1.0 / s.sum) : 0.0f;

  bool cut = false;  // a top-p cut at (s_last_l, s_last_id): later candidates are out
  if (a.top_p < 1.0f) {
    for (int b = tid; b < kBuckets; b += blockDim.x) {
      s_count[b] = 0;
      s_mass[b] = 0;
    }
    __syncthreads();
    for (int i = tid; i < n; i += blockDim.x) {
      const int b = bucket_of(s, l[i]);
      atomicAdd(&s_count[b], 1);
      atomicAdd(&s_mass[b], to_fix(prob_of(s, l[i])));
    }
    __syncthreads();
    const double top_p = a.top_p;
    find_bucket(
        s_mass, [top_p](Fix c) { return from_fix(c) >= top_p; }, &s_bucket, &s_fix_before);
    __syncthreads();
    const int bp = s_bucket;
    if (bp >= 0) {
      if (s_count[bp] > kCap) return on_host();
      const int m = gather_bucket(
          s, bp, [](int, float) { return true; }, s_key, s_id, &s_counter);
      if (tid == 0) {
        double cum = from_fix(s_fix_before);
        int j = 0;
        for (; j + 1 < m; ++j) {
          cum += prob_of(s, s_key[j]);
          if (cum >= top_p) break;
        }
        s_last_l = s_key[j];
        s_last_id = s_id[j];
      }
      __syncthreads();
      cut = true;
    }
  }
  const float last_l = s_last_l;
  const int last_id = s_last_id;
  auto kept = [&](int i, float li) {
    if (i == best) return true;  // the best stays whatever min_p is
    if (cut && better(last_l, last_id, li, i)) return false;
    return prob_of(s, li) >= threshold;
  };

  // The kept candidates' masses per bucket, their total, and the draw.
  for (int b = tid; b < kBuckets; b += blockDim.x) {
    s_count[b] = 0;
    s_mass[b] = 0;
  }
  __syncthreads();
  part = 0.0;
  for (int i = tid; i < n; i += blockDim.x) {
    const float li = l[i];
    if (!kept(i, li)) continue;
    const float q = prob_of(s, li);
    const int b = bucket_of(s, li);
    atomicAdd(&s_count[b], 1);
    atomicAdd(&s_mass[b], to_fix(q));
    part += q;
  }
  const double total = block_reduce_sum(part, s_redd);
  const double r = a.u * total;
  find_bucket(
      s_mass, [r](Fix c) { return from_fix(c) > r; }, &s_bucket, &s_fix_before);
  __syncthreads();
  int br = s_bucket;
  bool crossing = br >= 0;
  if (!crossing) {  // rounding left r at or beyond the running mass: the last kept candidate
    if (tid == 0) {
      br = kBuckets - 1;
      while (br > 0 && s_count[br] == 0) --br;
      s_bucket = br;
    }
    __syncthreads();
    br = s_bucket;
  }
  if (s_count[br] > kCap) return on_host();
  const int m = gather_bucket(s, br, kept, s_key, s_id, &s_counter);
  if (tid == 0) {
    int pick = m - 1;
    if (crossing) {
      double cum = from_fix(s_fix_before);
      for (int j = 0; j < m; ++j) {
        cum += prob_of(s, s_key[j]);
        if (cum > r) {
          pick = j;
          break;
        }
      }
    }
    ids[blockIdx.x] = m > 0 ? s_id[pick] : best;
  }
}

}  // namespace

Status sample_rows(RowsF32 logits, const SampleRowArgs* rows, int n_rows, const int32_t* pen_ids,
                   const int32_t* pen_counts, float* scratch, int32_t* ids, gpuStream_t stream) {
  if (n_rows == 0) return ok_status();
  launch_kernel(sample_rows_kernel, static_cast<unsigned>(n_rows), kThreads, 0, stream, logits, rows, pen_ids,
                pen_counts, scratch, ids);
  const gpuError_t err = gpuGetLastError();
  return err == gpuSuccess ? ok_status() : error_status(err, "sample_rows launch");
}

}  // namespace rf::gpu
