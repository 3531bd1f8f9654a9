-- Campaign x day: the hashtag/keyword groups of the city YAML (ops.campaign_terms), with the
-- posts that used one of their terms, their reach (distinct authors, reposts), mean sentiment
-- and the wards they came from. Every post counts, report or not.
with

posts as (

    select
        posts.post_id,
        posts.created_at,
        posts.post_text,
        posts.is_repost,
        posts.sentiment,
        posts.ward_id,
        raw.author_hash
    from {{ ref('int_posts_in_wards') }} as posts
    left join {{ source('raw', 'posts') }} as raw using (post_id)

),

terms as (

    select * from {{ source('ops', 'campaign_terms') }}

),

matched as (

    -- One row per campaign and post, however many of its terms the post used.
    select distinct terms.campaign, posts.*
    from posts
    inner join terms
        on regexp_matches(posts.post_text, terms.pattern)

),

final as (

    select
        campaign,
        cast(created_at as date) as activity_date,
        count(*) as post_count,
        count(distinct author_hash) as author_count,
        count(*) filter (where is_repost) as repost_count,
        round(avg(sentiment), 3) as mean_sentiment,
        count(distinct ward_id) as ward_count,
        list_sort(list(distinct ward_id) filter (where ward_id is not null)) as ward_ids
    from matched
    group by all

)

select * from final
