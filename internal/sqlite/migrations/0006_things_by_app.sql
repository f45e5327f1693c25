-- An app's things in creation order, for the things list and its search:
-- every index entry ends with the rowid, so (app_id) is (app_id, rowid)
-- and a page is a range of it, read in order until it is full. Without it
-- the planner took the (app_id, vendor_thing_id) index and sorted all of
-- the app's things by rowid for every page (17 ms for the first page of
-- 100,000 things: BenchmarkThingsSearch).
CREATE INDEX things_app ON things (app_id);
