"""The files Python writes and Swift reads, as frozen records with one reader and one writer each:
pipeline.json of a converted folder (pipeline_json.py) and manifest.json of an `export-blocks`
folder (blocks_manifest.py); docs/contracts.md describes both sides."""
