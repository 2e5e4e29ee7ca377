"""inferstack: serverless TFLite image classification (core library).

Submodules are imported explicitly (``from inferstack.classifier import Classifier``); this
package module stays import-free so that light entry points (CLI --help, the dispatcher) do
not pay for numpy, Pillow or the TFLite runtime.
"""

__version__ = "0.1.0"
