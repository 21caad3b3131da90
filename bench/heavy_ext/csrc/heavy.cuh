// Unrolled N x N update loops: ptxas work grows with N, so each instantiation costs real device-compile time.
template <int N, typename T>
__global__ void heavy(const T* __restrict__ x, T* __restrict__ y, int n) {
  T acc[N];
#pragma unroll
  for (int i = 0; i < N; ++i) acc[i] = x[(threadIdx.x + i) % n];
#pragma unroll
  for (int r = 0; r < N; ++r) {
#pragma unroll
    for (int i = 0; i < N; ++i) acc[i] = acc[i] * acc[(i + r) % N] + T(r);
  }
  T s = T(0);
#pragma unroll
  for (int i = 0; i < N; ++i) s += acc[i];
  y[blockIdx.x * blockDim.x + threadIdx.x] = s;
}

#define HEAVY_INST(N)                                                     \
  template __global__ void heavy<N, float>(const float*, float*, int);   \
  template __global__ void heavy<N, double>(const double*, double*, int);
