# SIMD kernel tables for rf_backend_cpu: each ISA in its own file with its own flags, picked at run time by
# kernels_select.cpp, so one binary runs on any CPU of its architecture.
target_sources(rf_backend_cpu PRIVATE ${CMAKE_CURRENT_LIST_DIR}/kernels_select.cpp ${CMAKE_CURRENT_LIST_DIR}/simd_bench.cpp)
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  target_sources(rf_backend_cpu PRIVATE ${CMAKE_CURRENT_LIST_DIR}/simd_avx2.cpp ${CMAKE_CURRENT_LIST_DIR}/simd_avx512.cpp
    ${CMAKE_CURRENT_LIST_DIR}/simd_avx512_vbmi.cpp)
  set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/simd_avx2.cpp PROPERTIES COMPILE_OPTIONS "-mavx2;-mfma;-mf16c")
  set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/simd_avx512.cpp PROPERTIES COMPILE_OPTIONS
    "-mavx2;-mfma;-mf16c;-mavx512f;-mavx512bw;-mavx512vl;-mavx512dq;-mavx512vnni;-Wno-uninitialized;-Wno-maybe-uninitialized")
  set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/simd_avx512_vbmi.cpp PROPERTIES COMPILE_OPTIONS
    "-mavx2;-mfma;-mf16c;-mavx512f;-mavx512bw;-mavx512vl;-mavx512dq;-mavx512vnni;-mavx512vbmi;-mgfni;-Wno-uninitialized;-Wno-maybe-uninitialized")
  # (GCC 12 warns about the deliberately undefined vectors inside its own avx512fintrin.h reductions)
  target_compile_definitions(rf_backend_cpu PRIVATE RF_HAVE_X86_SIMD=1)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64)$")
  target_sources(rf_backend_cpu PRIVATE ${CMAKE_CURRENT_LIST_DIR}/simd_neon.cpp)
  target_compile_definitions(rf_backend_cpu PRIVATE RF_HAVE_NEON_SIMD=1)
endif()
