#include <benchmark/benchmark.h>
#include <string>
static void BM_StringCopy(benchmark::State& state) {
  std::string x(state.range(0), 'x');
  for (auto _ : state) { std::string copy(x); benchmark::DoNotOptimize(copy); }
  state.counters["bytes"] = state.range(0);
}
BENCHMARK(BM_StringCopy)->Arg(8)->Arg(512);
static void BM_Empty(benchmark::State& state) { for (auto _ : state) benchmark::ClobberMemory(); }
BENCHMARK(BM_Empty);
BENCHMARK_MAIN();
