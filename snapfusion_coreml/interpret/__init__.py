"""Run a converted folder's Core ML packages on Linux with the program interpreter of verify/:
as a pipeline backend (`generate OUT`, `eval`) and as the stdin/stdout tensor server of
docs/contracts.md section 8 (`interpret OUT`)."""

from ..verify.folder import ConvertedFolder, open_converted_folder

__all__ = ["ConvertedFolder", "open_converted_folder"]
