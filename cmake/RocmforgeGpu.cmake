# GPU backend selection. Filled in by the GPU layer; "auto" picks CUDA when nvcc is found.
set(ROCMFORGE_GPU_BACKEND "off")
