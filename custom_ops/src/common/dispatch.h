// Runtime flags to template arguments: with_flags(f, a, b, ...) returns
// f.template get<a, b, ...>(), so a kernel variant is compiled for every combination of its
// flags (signed, reset to zero, counts written, ...) and chosen per run. Host code only.
#pragma once

namespace snn {

template <bool... Bs, class F>
decltype(auto) with_flags(const F& f) {
  return f.template get<Bs...>();
}

template <bool... Bs, class F, class... Rest>
decltype(auto) with_flags(const F& f, bool first, Rest... rest) {
  return first ? with_flags<Bs..., true>(f, rest...) : with_flags<Bs..., false>(f, rest...);
}

}  // namespace snn
