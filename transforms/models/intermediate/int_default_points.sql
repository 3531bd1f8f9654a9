-- A geocoder's default point (City Hall, a city or ZIP centroid, a platform's place centre)
-- carries reports from all over the city; a busy real address carries many reports of one
-- place. Identical coordinates alone cannot tell them apart (4-decimal coordinates repeat at
-- real addresses), so a point shared by `min_posts` geotagged or place-box posts is only a
-- candidate, and it is a default when the evidence says so:
--   configured list  : it is one of the city's known defaults (YAML `known_points`);
--   known centroid   : it is the city bbox centre, a ward's centroid or a listed centroid;
--   place centre     : most of its posts were placed at a platform's place box centre;
--   texts disagree   : posts whose texts name several places far from the point (ml.post_text_places);
--   share            : it holds a share of the city's posts far beyond any real address.
-- Parameters are per-city YAML settings (`locations.default_points`), passed as dbt vars.
{%- set known_points = var('default_point_known_points', []) %}
{%- set known_centroids = var('default_point_known_centroids', []) %}
{%- set city_centre = var('default_point_city_centre', none) %}
{%- set tolerance_m = var('default_point_tolerance_m', 30) %}
{%- set agree_m = var('default_point_agree_m', 300) %}
{%- set disagree_m = var('default_point_disagree_m', 1000) %}
{%- set min_disagreeing = var('default_point_min_disagreeing_posts', 3) %}
{%- set disagree_share = var('default_point_disagree_share', 0.5) %}
{%- set min_places = var('default_point_min_disagreeing_places', 2) %}
{%- set max_share = var('default_point_max_share', 0.02) %}
{%- set share_min_posts = var('default_point_share_min_posts', 50) %}
with

located as (

    select locations.post_id, locations.lat, locations.lon, locations.method
    from {{ source('ml', 'post_locations') }} as locations
    inner join {{ ref('stg_social__posts') }} as posts using (post_id)
    where locations.lat is not null
        and locations.method in ('geotag', 'place_bbox')
        and not coalesce(posts.is_repost, false)

),

city as (

    select count(*) as city_posts from located

),

candidates as (

    select lat, lon, count(*) as posts, count(*) filter (where method = 'place_bbox') as place_box_posts
    from located
    group by lat, lon
    having count(*) >= {{ var('default_point_min_posts', 5) }}

),

texts as (

    select
        candidates.lat,
        candidates.lon,
        count(*) as text_posts,
        count(*) filter (
            where {{ haversine_m('candidates.lat', 'candidates.lon', 'text.text_lat', 'text.text_lon') }} <= {{ agree_m }}
        ) as text_agree,
        count(*) filter (
            where {{ haversine_m('candidates.lat', 'candidates.lon', 'text.text_lat', 'text.text_lon') }} > {{ disagree_m }}
        ) as text_disagree,
        count(distinct text.place_id) filter (
            where {{ haversine_m('candidates.lat', 'candidates.lon', 'text.text_lat', 'text.text_lon') }} > {{ disagree_m }}
        ) as text_disagree_places
    from candidates
    inner join located on located.lat = candidates.lat and located.lon = candidates.lon
    inner join {{ source('ml', 'post_text_places') }} as text using (post_id)
    where text.text_lat is not null
    group by candidates.lat, candidates.lon

),

known as (

    select null::double as lat, null::double as lon, null::varchar as kind where false
    {%- for point in known_points %}
    union all select {{ point[0] }}, {{ point[1] }}, 'configured list'
    {%- endfor %}
    {%- for point in known_centroids %}
    union all select {{ point[0] }}, {{ point[1] }}, 'known centroid'
    {%- endfor %}
    {%- if city_centre %}
    union all select {{ city_centre[0] }}, {{ city_centre[1] }}, 'city centre'
    {%- endif %}
    union all
    select st_y(st_centroid(geom)), st_x(st_centroid(geom)), 'ward ' || ward_id || ' centroid'
    from {{ source('gis', 'wards') }}

),

near_known as (

    -- the configured list first, then the centroids (a name to report)
    select candidates.lat, candidates.lon, min(known.kind) as known_kind
    from candidates
    inner join known
        on abs(known.lat - candidates.lat) < 0.01 and abs(known.lon - candidates.lon) < 0.01
        and {{ haversine_m('candidates.lat', 'candidates.lon', 'known.lat', 'known.lon') }} <= {{ tolerance_m }}
    group by candidates.lat, candidates.lon

),

evidence as (

    select
        candidates.lat,
        candidates.lon,
        candidates.posts,
        candidates.place_box_posts,
        coalesce(texts.text_posts, 0) as text_posts,
        coalesce(texts.text_agree, 0) as text_agree,
        coalesce(texts.text_disagree, 0) as text_disagree,
        coalesce(texts.text_disagree_places, 0) as text_disagree_places,
        near_known.known_kind,
        candidates.posts / greatest(city.city_posts, 1) as city_share
    from candidates
    cross join city
    left join texts on texts.lat = candidates.lat and texts.lon = candidates.lon
    left join near_known on near_known.lat = candidates.lat and near_known.lon = candidates.lon

),

decided as (

    select
        *,
        case
            when known_kind = 'configured list' then 'configured list'
            when known_kind is not null then 'known centroid: ' || known_kind
            when place_box_posts * 2 >= posts then 'platform place centre'
            -- one address repeated far away is a mislabelled busy address; a default's posts name many places
            when text_disagree >= {{ min_disagreeing }} and text_disagree >= {{ disagree_share }} * text_posts
                and text_disagree_places >= {{ min_places }}
                then 'texts name places elsewhere'
            when posts >= {{ share_min_posts }} and city_share > {{ max_share }} then 'share of the city''s posts'
        end as reason
    from evidence

),

final as (

    select
        lat,
        lon,
        posts,
        place_box_posts,
        text_posts,
        text_agree,
        text_disagree,
        text_disagree_places,
        city_share,
        reason,
        reason is not null as is_default,
        -- A flag the texts contradict: the point's posts name places at the point, none elsewhere.
        reason is not null
        and text_disagree = 0
        and text_agree >= {{ min_disagreeing }}
        and text_agree >= 0.5 * text_posts as is_suspected_false_flag
    from decided

)

select * from final
