"""Run tritonclient against a server and print what it saw as one JSON object (a separate process:
tritonclient's generated modules and the server's define the same `inference.*` protobuf messages,
which one process's descriptor pool cannot hold twice).

    python tritonclient_probe.py [--http] TARGET SCRIPT.json

SCRIPT.json lists calls: {"call": "live" | "ready" | "model_ready" | "server_metadata" | "model_metadata" |
"infer", ...arguments}; each result (or the error's status and message) goes into the output list.
``--http``: tritonclient.http (the REST binding) instead of tritonclient.grpc; an infer step's ``binary``
(default true) sends the input and asks for the outputs as binary data, else as JSON.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

import numpy as np
from tritonclient.utils import InferenceServerException

HTTP = "--http" in sys.argv
triton: Any = importlib.import_module("tritonclient.http" if HTTP else "tritonclient.grpc")


def run(client: Any, step: dict[str, Any]) -> Any:
    headers = step.get("headers")
    call = step["call"]
    if call == "live":
        return client.is_server_live(headers=headers)
    if call == "ready":
        return client.is_server_ready(headers=headers)
    if call == "model_ready":
        return client.is_model_ready(step["model"], step.get("version", ""), headers=headers)
    as_json = {} if HTTP else {"as_json": True}
    if call == "server_metadata":
        return client.get_server_metadata(headers=headers, **as_json)
    if call == "model_metadata":
        return client.get_model_metadata(step["model"], step.get("version", ""), headers=headers, **as_json)
    if call == "infer":
        x = np.load(step["input"])
        if "datatype" in step:
            x = x.astype({"UINT8": np.uint8, "FP32": np.float32}[step["datatype"]])
        name = step.get("input_name", "images")
        datatype = step.get("datatype", "UINT8" if x.dtype == np.uint8 else "FP32")
        tensor = triton.InferInput(name, list(x.shape), datatype)
        binary = {"binary_data": step.get("binary", True)} if HTTP else {}
        tensor.set_data_from_numpy(x, **binary)
        outputs = [triton.InferRequestedOutput(o, **binary) for o in step["outputs"]] if "outputs" in step else None
        result = client.infer(step["model"], [tensor], model_version=step.get("version", ""), outputs=outputs,
                              request_id=step.get("request_id", ""), parameters=step.get("parameters"), headers=headers)
        response = result.get_response(**as_json)
        names = [o["name"] for o in response.get("outputs", [])]
        return {"id": response.get("id", ""), "model_version": response.get("model_version", ""),
                "outputs": {n: result.as_numpy(n).tolist() for n in names}, "order": names}
    raise ValueError(call)


def main() -> None:
    target, path = [arg for arg in sys.argv[1:] if arg != "--http"]
    script = json.load(open(path))
    out: list[Any] = []
    with triton.InferenceServerClient(url=target) as client:
        for step in script:
            try:
                out.append({"ok": run(client, step)})
            except InferenceServerException as error:
                out.append({"error": error.status(), "message": error.message()})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
