"""CycloneDX AI-BOM generation (planned: see the product roadmap; nothing is built here yet)."""
