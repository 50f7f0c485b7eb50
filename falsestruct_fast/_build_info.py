source_hash = "6315bfca0254ee94792287642b9399e2a1d5dc228230ed9d6e3dc005878ca759"
cuda_built = True
native_arch = True
