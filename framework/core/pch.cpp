// Anchor translation unit of the copaint_pch target, which only builds the precompiled header.
