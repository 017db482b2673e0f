-- A store made by prefect-like at schema version 1 (commit 7619f25), dumped with sqlite3's iterdump:
-- one finished flow run (4 Completed, 1 Failed task runs, logs) and one whose process was SIGKILLed
-- (RUNNING, with task runs Completed and Running). Loaded by tests/tracking/test_schema.py, which sets
-- PRAGMA user_version = 1 as that version did.
BEGIN TRANSACTION;
CREATE TABLE flow_runs (
    key INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    name TEXT,
    flow_name TEXT,
    runner TEXT,
    parent_flow_run_id TEXT,
    parent_task_run_id TEXT,
    parameters TEXT,
    seq INTEGER NOT NULL,
    state_type TEXT,
    state_name TEXT,
    message TEXT,
    created REAL,
    start_time REAL,
    end_time REAL,
    duration REAL,
    task_runs TEXT,
    error TEXT,
    heartbeat REAL
);
INSERT INTO "flow_runs" VALUES(1,'f11c6c8763ed4d2dbd7d8bdbbdea4201','brisk-ferret-681','finished','ThreadPoolTaskRunner',NULL,NULL,'{}',1,'COMPLETED','Completed',NULL,1.79617231307948732373e+09,1.79617231307948732373e+09,1.79617231308056378357e+09,3.5102367401123046875e-03,'{"Completed":4,"Failed":1}',NULL,NULL);
INSERT INTO "flow_runs" VALUES(2,'590380d6e5a849e9b8cb5e40de6cb303','vivid-tapir-843','killed','ThreadPoolTaskRunner',NULL,NULL,'{}',0,'RUNNING','Running',NULL,1.79617231327337479587e+09,1.79617231327337479587e+09,NULL,NULL,NULL,NULL,1.7961723159373862743e+09);
CREATE TABLE logs (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    flow_run_id TEXT,
    task_run_id TEXT,
    level TEXT,
    logger TEXT,
    timestamp REAL,
    message TEXT,
    PRIMARY KEY (run_id, seq)
);
INSERT INTO "logs" VALUES('f11c6c8763ed-e99e920',0,'f11c6c8763ed4d2dbd7d8bdbbdea4201','f11c6c8763ed-e99e920','INFO','prefect_like.runs',1.79617231308076953882e+09,'squaring 0');
INSERT INTO "logs" VALUES('f11c6c8763ed-e99e921',0,'f11c6c8763ed4d2dbd7d8bdbbdea4201','f11c6c8763ed-e99e921','INFO','prefect_like.runs',1.7961723130810651779e+09,'squaring 1');
INSERT INTO "logs" VALUES('f11c6c8763ed-e99e922',0,'f11c6c8763ed4d2dbd7d8bdbbdea4201','f11c6c8763ed-e99e922','INFO','prefect_like.runs',1.79617231308122491835e+09,'squaring 2');
INSERT INTO "logs" VALUES('f11c6c8763ed-e99e924',0,'f11c6c8763ed4d2dbd7d8bdbbdea4201','f11c6c8763ed-e99e924','INFO','prefect_like.runs',1.79617231308222055435e+09,'squaring 4');
CREATE TABLE state_history (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    state_type TEXT,
    state_name TEXT,
    timestamp REAL,
    message TEXT,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
INSERT INTO "state_history" VALUES('590380d6e5a849e9b8cb5e40de6cb303',0,'RUNNING','Running',1.79617231327337479587e+09,NULL);
INSERT INTO "state_history" VALUES('f11c6c8763ed4d2dbd7d8bdbbdea4201',0,'RUNNING','Running',1.79617231307948732373e+09,NULL);
INSERT INTO "state_history" VALUES('f11c6c8763ed4d2dbd7d8bdbbdea4201',1,'COMPLETED','Completed',1.79617231308056378357e+09,NULL);
CREATE TABLE task_runs (
    id TEXT PRIMARY KEY,
    flow_key INTEGER,
    task_name TEXT,
    map_index INTEGER,
    name TEXT,
    tags TEXT,
    seq INTEGER NOT NULL,
    state_type TEXT,
    state_name TEXT,
    message TEXT,
    run_count INTEGER,
    parameters TEXT,
    result TEXT,
    error TEXT,
    created REAL NOT NULL,
    start_time REAL,
    end_time REAL,
    duration REAL
);
INSERT INTO "task_runs" VALUES('f11c6c8763ed-e99e920',1,'square',0,NULL,NULL,2,'COMPLETED','Completed',NULL,1,'{"i":0}','0',NULL,1.79617231308046793936e+09,1.79617231308069920546e+09,1.7961723130809731483e+09,2.844333648681640625e-04);
INSERT INTO "task_runs" VALUES('f11c6c8763ed-e99e921',1,'square',1,NULL,NULL,2,'COMPLETED','Completed',NULL,1,'{"i":1}','1',NULL,1.79617231308050441743e+09,1.79617231308103418347e+09,1.79617231308116245269e+09,1.3446807861328125e-04);
INSERT INTO "task_runs" VALUES('f11c6c8763ed-e99e922',1,'square',2,NULL,NULL,2,'COMPLETED','Completed',NULL,1,'{"i":2}','4',NULL,1.79617231308051276202e+09,1.79617231308120083813e+09,1.79617231308130288129e+09,1.065731048583984375e-04);
INSERT INTO "task_runs" VALUES('f11c6c8763ed-e99e923',1,'square',3,NULL,NULL,2,'FAILED','Failed','ValueError: three is not allowed',1,'{"i":3}',NULL,'{"type":"ValueError","message":"three is not allowed","traceback":"Traceback (most recent call last):\n  File \"/work/main/prefect_like/engine/task_engine.py\", line 283, in steps\n    result = yield invoke\n             ^^^^^^^^^^^^\n  File \"/work/main/prefect_like/engine/steps.py\", line 107, in drive\n    value, error = step.run(), None\n                   ^^^^^^^^^^\n  File \"/work/main/prefect_like/engine/steps.py\", line 84, in run\n    return self.fn()\n           ^^^^^^^^^\n  File \"/work/main/prefect_like/engine/task_engine.py\", line 277, in <lambda>\n    lambda: task.call_function(run.parameters), run.options.timeout_seconds,\n            ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  File \"/work/main/prefect_like/calls.py\", line 218, in call_function\n    return fn(**parameters)\n           ^^^^^^^^^^^^^^^^\n  File \"/tmp/h1gen/gen.py\", line 8, in square\n    raise ValueError(\"three is not allowed\")\nValueError: three is not allowed\n"}',1.79617231308051848413e+09,1.79617231308133196827e+09,1.79617231308135843277e+09,3.02791595458984375e-05);
INSERT INTO "task_runs" VALUES('f11c6c8763ed-e99e924',1,'square',4,NULL,NULL,2,'COMPLETED','Completed',NULL,1,'{"i":4}','16',NULL,1.79617231308052372937e+09,1.79617231308219480519e+09,1.79617231308230519293e+09,1.146793365478515625e-04);
INSERT INTO "task_runs" VALUES('590380d6e5a8-77385a2',2,'slow',2,NULL,NULL,1,'RUNNING','Running',NULL,1,NULL,NULL,NULL,1.79617231327436017987e+09,1.79617231327453565599e+09,NULL,NULL);
INSERT INTO "task_runs" VALUES('590380d6e5a8-77385a3',2,'slow',3,NULL,NULL,1,'RUNNING','Running',NULL,1,NULL,NULL,NULL,1.79617231327436590194e+09,1.79617231327457475657e+09,NULL,NULL);
INSERT INTO "task_runs" VALUES('590380d6e5a8-77385a4',2,'slow',4,NULL,NULL,1,'RUNNING','Running',NULL,1,NULL,NULL,NULL,1.79617231327437162401e+09,1.79617231327464962008e+09,NULL,NULL);
INSERT INTO "task_runs" VALUES('590380d6e5a8-77385a5',2,'slow',5,NULL,NULL,1,'RUNNING','Running',NULL,1,NULL,NULL,NULL,1.79617231327437639233e+09,1.79617231327466678617e+09,NULL,NULL);
INSERT INTO "task_runs" VALUES('590380d6e5a8-77385a0',2,'slow',0,NULL,NULL,2,'COMPLETED','Completed',NULL,1,'{"i":0}','0',NULL,1.7961723132743170261e+09,1796172313.27445,1.79617231327446985242e+09,2.574920654296875e-05);
INSERT INTO "task_runs" VALUES('590380d6e5a8-77385a1',2,'slow',1,NULL,NULL,2,'COMPLETED','Completed',NULL,1,'{"i":1}','1',NULL,1.79617231327435040479e+09,1.79617231327451443677e+09,1.79617231327452111242e+09,9.059906005859375e-06);
CREATE INDEX flow_runs_created ON flow_runs (created);
CREATE INDEX flow_runs_start_time ON flow_runs (start_time);
CREATE INDEX flow_runs_flow_name ON flow_runs (flow_name, created);
CREATE INDEX task_runs_state_name ON task_runs (flow_key, state_name);
CREATE INDEX task_runs_created ON task_runs (flow_key, created);
CREATE INDEX task_runs_task_name ON task_runs (flow_key, task_name);
CREATE INDEX logs_flow_run ON logs (flow_run_id, timestamp);
COMMIT;
